"""Backend.AI's ``admin/gql``: the GraphQL subset the official client sends (backendai_gql.py's schema)."""

from __future__ import annotations

from .. import backendai_gql, session_query
from .. import tenancy as T
from ..models import KernelSession, KeyPair
from ..vfolders import backendai_format, folders, lookup, permissions
from .backendai_api import CompatBase
from .rules import session_scope


class CompatGraphQLHandler(CompatBase):
    """``POST <prefix>admin/gql``: the Backend.AI GraphQL subset the client sends (backendai_gql.py: the
    vfolder lists, the session list and one session, the caller's keypair), over what our own API shows
    the caller, in one read-only transaction."""
    audited = False  # queries only (POST is GraphQL's transport)

    async def post(self):
        body = self.body()
        status, answer = await self.run(lambda s: backendai_gql.execute(body, self.gql_source(s)), readonly=True)
        self.write_json(answer if status == 200 else backendai_format.problem(status, answer), status)

    def gql_source(self, s) -> backendai_gql.Source:
        p = self.principal
        scope = session_scope(p)
        keep = {"vfolder_own_list": lambda acc, d: acc.via == permissions.OWNER,
                "vfolder_invited_list": lambda acc, d: acc.via == permissions.INVITED,
                "vfolder_project_list": lambda acc, d: d["type"] == "group"}

        def vfolders(root: str, group, sizes: bool) -> list[dict]:
            mine = keep.get(root, lambda acc, d: True)
            found = [(vf, d) for vf, acc in lookup.list_for(s, p)
                     for d in [backendai_format.folder_dict(folders.to_dict(vf, acc))]
                     if mine(acc, d) and (group is None or d["group"] == group)]
            return [backendai_format.gql_item(
                backendai_format.folder_dict(folders.info(s, self.storage, p, vf.id)) if sizes else d,
                backendai_format.GQL_FIELDS) for vf, d in found]

        def item(row):
            return backendai_gql.session_item(session_query.to_dict(row), row.user.email)

        def sessions(filters, limit, offset):
            rows, total = session_query.find(s, scope, filters, limit, offset)
            return [item(r) for r in rows], total

        def session(sid: int):
            row = s.get(KernelSession, sid)
            return item(row) if row is not None and session_query.visible(scope, row) else None

        def keypair():
            kp = s.get(KeyPair, p.access_key) if p.access_key else None
            me = T.users.get(s, p.username)
            return {"user_id": me.email, "user_info": {"full_name": me.full_name, "email": me.email},
                    "projects": sorted(p.groups), "access_key": p.access_key,
                    "secret_key": None,  # never sent back: the caller signed with it
                    "is_active": kp.is_active if kp else None, "is_admin": p.is_admin,
                    "created_at": kp.created_at.isoformat() if kp and kp.created_at else None,
                    "resource_policy": kp.resource_policy.name if kp else None}

        return backendai_gql.Source(vfolders=vfolders, sessions=sessions, session=session, keypair=keypair)


ROUTES = [(r"admin/gql", CompatGraphQLHandler)]
