"""Backend.AI's storage-proxy routes: tus uploads and downloads authenticated by a request-upload/-download token."""

from __future__ import annotations

from tornado import web

from ..errors import BadToken
from ..models import User, UserRole
from ..vfolders import transfer_tokens
from .downloads import DownloadHandler
from .uploads import UploadHandler


def token_secret(handler: web.RequestHandler | web.Application) -> bytes:
    """What signs the transfer tokens: a key derived from the database's crypt key, so that a token
    handed out outlives a restart of the service (an upload it names resumes after one), which the
    cookie secret (new at every start) would not."""
    settings = handler.settings
    secret = settings.get("transfer_token_secret")
    if secret is None:
        secret = settings["transfer_token_secret"] = settings["db"].secrets.derive("transfer-tokens")
    return secret


class _TokenAuth:
    """Authenticate by the ``?token=`` a request-upload/-download answer handed out (no signature)."""

    token_kind = ""
    claims: dict

    async def authenticate(self):
        self.claims = transfer_tokens.read_token(token_secret(self), self.get_query_argument("token", None),
                                                 self.token_kind)
        username = self.claims["user"]

        def work(s):
            user = s.query(User).filter(User.username == username).one_or_none()
            if user is None:
                raise BadToken("token: its user is gone", field="token")
            self.check_active(user)
            admin = frozenset({user.domain.name}) if user.role == UserRole.domain_admin else frozenset()
            return self.make_principal(user, user.role.value, admin, via="token")

        principal = await self.run(work)
        self.path_args = [self.claims["vfolder"]] + ([self.claims["upload"]] if "upload" in self.claims else [])
        return principal


class CompatTusUploadHandler(_TokenAuth, UploadHandler):
    token_kind = "upload"

    def upload_location(self, upload_id: str) -> str | None:
        return None  # the token names the upload: the route has no URL of another one


class CompatTusDownloadHandler(_TokenAuth, DownloadHandler):
    token_kind = "download"
    default_archive = "zip"

    def download_path(self) -> str:
        return self.claims["path"]


TUS_PATH = "folders/_/tus/"  # then upload or download: under the service prefix, or the transfer listener's path


def transfer_url(settings, protocol: str, host: str, what: str) -> str:
    """The URL of a token route (``upload``, ``download``) to hand a client: under the transfer
    listener's public URL when there is one (``BackendAIService.transfer_bind_url``), else under the
    service's prefix at the address the request came to (the hub's proxy)."""
    public = settings.get("transfer_public_url")
    if public:
        return f"{public}{TUS_PATH}{what}"
    prefix = settings.get("service_prefix", "/services/backendai/")
    return f"{protocol}://{host}{prefix}{TUS_PATH}{what}"


# relative to the service prefix (the URLs request-upload and request-download answer)
ROUTES = [
    (rf"{TUS_PATH}upload", CompatTusUploadHandler),
    (rf"{TUS_PATH}download", CompatTusDownloadHandler),
]
