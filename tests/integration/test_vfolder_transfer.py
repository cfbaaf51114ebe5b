"""Uploads (tus 1.0, resumable after a cut connection) and downloads (Range, tar, zip), checked by SHA-256."""

import asyncio
import base64
import hashlib
import http.client
import io
import os
import tarfile
import zipfile

from backendai_hub.service.server import BackendAIService
from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import API, Service

MiB = 1 << 20
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


async def with_data_folder(svc):
    code, _ = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "32m"})
    assert code == 201


template, svc = service_fixtures(Service, setup=with_data_folder)


def meta(**kw):
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kw.items())


async def create(svc, path, length, actor="alice", folder="data", **extra):
    resp = await svc.raw(actor, "POST", f"vfolders/{folder}/uploads", b"",
                         headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta(path=path), **extra})
    return resp


async def patch(svc, location, offset, data, actor="alice"):
    return await svc.raw(actor, "PATCH", location, data, content_type=OCTETS,
                         headers={**TUS, "Upload-Offset": str(offset)})


async def head_offset(svc, location, actor="alice"):
    resp = await svc.raw(actor, "HEAD", location, None, headers=TUS)
    assert resp.code == 200, resp.code
    assert resp.headers["Cache-Control"] == "no-store"
    return int(resp.headers["Upload-Offset"]), int(resp.headers["Upload-Length"])


async def cut_patch(svc, location, offset, data, send):
    """A PATCH whose connection drops after ``send`` bytes of the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    hdrs = {**svc.headers("alice", "PATCH", location, OCTETS), **TUS, "Content-Type": OCTETS,
            "Upload-Offset": str(offset), "Content-Length": str(len(data)), "Host": f"127.0.0.1:{svc.port}"}
    writer.write(f"PATCH {location} HTTP/1.1\r\n".encode()
                 + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode() + b"\r\n")
    for i in range(0, send, 64 * 1024):
        writer.write(data[i:min(send, i + 64 * 1024)])
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_interrupted_upload_resumes_and_download_matches(svc):
    blob = os.urandom(10 * MiB)
    digest = hashlib.sha256(blob).hexdigest()
    resp = await create(svc, "big.bin", len(blob))
    assert resp.code == 201, resp.body
    location = resp.headers["Location"]
    assert location.startswith(API + "vfolders/data/uploads/") and resp.headers["Tus-Resumable"] == "1.0.0"
    assert await head_offset(svc, location) == (0, len(blob))
    # first 3 MiB in one PATCH
    resp = await patch(svc, location, 0, blob[:3 * MiB])
    assert resp.code == 204 and resp.headers["Upload-Offset"] == str(3 * MiB)
    # a wrong offset is a conflict, and nothing is written
    resp = await patch(svc, location, 0, blob[:10])
    assert resp.code == 409
    # the connection drops 4 MiB into a 7 MiB PATCH
    await cut_patch(svc, location, 3 * MiB, blob[3 * MiB:], send=4 * MiB)
    for _ in range(50):
        offset, _ = await head_offset(svc, location)
        await asyncio.sleep(0.05)
        if offset == (await head_offset(svc, location))[0]:
            break
    assert 3 * MiB < offset <= 7 * MiB
    # resume where the server says, in 1 MiB pieces
    while offset < len(blob):
        resp = await patch(svc, location, offset, blob[offset:offset + MiB])
        assert resp.code == 204, resp.body
        offset = int(resp.headers["Upload-Offset"])
    assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 404  # finished: gone
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin")
    assert resp.code == 200 and hashlib.sha256(resp.body).hexdigest() == digest
    assert resp.headers["Accept-Ranges"] == "bytes"
    code, info = await svc.call("alice", "GET", "vfolders/data")
    assert (info["size"], info["file_count"]) == (len(blob), 1)
    # ranges
    for rng, (first, last) in {"bytes=0-99": (0, 99), "bytes=-100": (len(blob) - 100, len(blob) - 1),
                               f"bytes={len(blob) - 5}-": (len(blob) - 5, len(blob) - 1),
                               "bytes=5-999999999": (5, len(blob) - 1)}.items():
        resp = await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin", headers={"Range": rng})
        assert resp.code == 206 and resp.body == blob[first:last + 1], rng
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(blob)}"
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin", headers={"Range": f"bytes={len(blob)}-"})
    assert resp.code == 416 and resp.headers["Content-Range"] == f"bytes */{len(blob)}"


async def test_folders_download_as_tar_and_zip(svc):
    files = {"top.txt": os.urandom(1000), "sub/inner.bin": os.urandom(300_000), "sub/deeper/empty": b""}
    code, _ = await svc.call("alice", "POST", "vfolders/data/mkdir", {"path": "sub/deeper", "parents": True})
    assert code == 201
    for path, data in files.items():
        resp = await create(svc, path, len(data))
        assert resp.code == 201, resp.body
        if data:
            assert (await patch(svc, resp.headers["Location"], 0, data)).code == 204
    vfid = (await svc.call("alice", "GET", "vfolders/data"))[1]["id"]
    os.symlink("/etc/passwd", os.path.join(svc.storage.path("local", vfid), "sub", "outside-link"))
    resp = await svc.raw("alice", "GET", "vfolders/data/download")
    assert resp.code == 200 and resp.headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
        link = tf.getmember("vfolder/sub/outside-link")
        assert link.issym() and link.linkname == "/etc/passwd"  # the link, never the file behind it
    assert got == {f"vfolder/{k}": v for k, v in files.items()}
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=sub&archive=zip")
    assert resp.code == 200 and resp.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.body)) as zf:
        got = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    assert got == {"sub/inner.bin": files["sub/inner.bin"], "sub/deeper/empty": b""}
    code, p = await svc.call("alice", "GET", "vfolders/data/download?archive=rar")
    assert code == 400 and p["field"] == "archive"


async def test_quota_and_rules_of_uploads(svc):
    resp = await create(svc, "huge.bin", 33 * MiB)
    assert resp.code == 413
    assert b"does not fit in the vfolder's quota" in resp.body
    first = await create(svc, "a.bin", 20 * MiB)
    assert first.code == 201
    resp = await create(svc, "b.bin", 20 * MiB)  # the first one's declared bytes are reserved
    assert resp.code == 413
    resp = await svc.raw("alice", "PATCH", first.headers["Location"], b"x", content_type="application/json",
                         headers={**TUS, "Upload-Offset": "0"})
    assert resp.code == 415
    assert (await patch(svc, first.headers["Location"], 0, b"x", actor="bob")).code == 404  # not his folder
    assert (await svc.raw("alice", "DELETE", first.headers["Location"], None, headers=TUS)).code == 204
    assert (await create(svc, "b.bin", 20 * MiB)).code == 201  # the reservation went with it
    assert (await create(svc, "../escape", 1)).code == 400
    assert (await create(svc, ".upload/x", 1)).code == 400
    resp = await create(svc, "b.bin", 1, **{"Tus-Resumable": "0.2.2"})
    assert resp.code == 412
    resp = await svc.raw("alice", "POST", "vfolders/data/uploads", b"", headers={**TUS, "Upload-Length": "-1",
                                                                                  "Upload-Metadata": meta(path="x")})
    assert resp.code == 400 and b"Upload-Length" in resp.body
    # an empty file completes at once; the same name again needs overwrite
    assert (await create(svc, "empty", 0)).code == 201
    assert (await create(svc, "empty", 0)).code == 409
    assert (await create(svc, "empty", 0, **{"Upload-Metadata": meta(path="empty", overwrite="true")})).code == 201
    # readers cannot upload
    code, _ = await svc.call("alice", "POST", "vfolders/data/invitations", {"emails": ["bob@example.com"], "permission": "ro"})
    inv = (await svc.call("bob", "GET", "vfolder-invitations"))[1]["incoming"][0]["id"]
    await svc.call("bob", "POST", f"vfolder-invitations/{inv}/accept")
    vfid = (await svc.call("alice", "GET", "vfolders/data"))[1]["id"]
    resp = await create(svc, "bob.txt", 1, actor="bob", folder=vfid)
    assert resp.code == 403 and b"write needs rw" in resp.body


# -- a 1 GiB file, through the service as main() serves it --------------------------------------------

GiB = 1 << 30


class Keystream:
    """Pseudo-random bytes made as they are sent, so no source file is written: AES-CTR keystream
    (GB/s; os.urandom is ~20x slower), the same again from any offset."""

    def __init__(self):
        self.key, self.nonce = os.urandom(32), int.from_bytes(os.urandom(8), "big") << 64

    def pieces(self, first: int, size: int, piece: int = 8 * MiB):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        block = (self.nonce + first // 16).to_bytes(16, "big")
        enc = Cipher(algorithms.AES(self.key), modes.CTR(block)).encryptor()
        zeros, skip = bytes(piece), first % 16
        while size > 0:
            data = enc.update(zeros[:min(piece, size + skip)])[skip:]
            skip, size = 0, size - len(data)
            yield data


# the service behind an HTTP server with the options main() listens with (1 MiB pieces)
main_svc = service_fixtures(Service, server_options=BackendAIService().http_server_options()).svc


def _stream(svc, method, location, *, sink, body=None, headers=None):
    """A signed request of bob's from a thread of its own (the service answers on the test's event
    loop): ``body`` may be an iterable of pieces, the answer goes to ``sink`` in 1 MiB pieces.
    Returns (status, headers)."""
    ctype = OCTETS if method == "PATCH" else "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=300, blocksize=MiB)
    try:
        conn.request(method, location, body=body,
                     headers={**svc.headers("bob", method, location, ctype), "Content-Type": ctype, **(headers or {})})
        resp = conn.getresponse()
        while data := resp.read(MiB):
            sink(data)
        return resp.status, resp.headers
    finally:
        conn.close()


async def test_one_gib_upload_and_download_keep_every_byte(main_svc):
    svc, stream = main_svc, Keystream()
    assert (await svc.call("bob", "POST", "vfolders", {"name": "big"}))[0] == 201  # bob has no quota
    resp = await create(svc, "one.gib", GiB, actor="bob", folder="big")
    assert resp.code == 201, resp.body
    location = resp.headers["Location"]
    sent = hashlib.sha256()

    def body():
        for data in stream.pieces(0, GiB):
            sent.update(data)
            yield data

    try:
        status, headers = await asyncio.to_thread(
            _stream, svc, "PATCH", location, body=body(),
            headers={**TUS, "Upload-Offset": "0", "Content-Length": str(GiB)}, sink=len)
        assert status == 204 and headers["Upload-Offset"] == str(GiB)
        code, info = await svc.call("bob", "GET", "vfolders/big")
        assert code == 200 and (info["size"], info["file_count"]) == (GiB, 1)
        # downloaded whole, hashed as it arrives
        got = hashlib.sha256()
        status, headers = await asyncio.to_thread(
            _stream, svc, "GET", API + "vfolders/big/download?path=one.gib", sink=got.update)
        assert status == 200 and headers["Content-Length"] == str(GiB)
        assert got.hexdigest() == sent.hexdigest()
        # and its last 3 MiB + 1 byte as a range
        first = GiB - 3 * MiB - 1
        tail, got = hashlib.sha256(b"".join(stream.pieces(first, GiB - first))), hashlib.sha256()
        status, headers = await asyncio.to_thread(
            _stream, svc, "GET", API + "vfolders/big/download?path=one.gib",
            headers={"Range": f"bytes=-{GiB - first}"}, sink=got.update)
        assert status == 206 and headers["Content-Range"] == f"bytes {first}-{GiB - 1}/{GiB}"
        assert got.hexdigest() == tail.hexdigest()
    finally:  # 1 GiB would otherwise stay in pytest's kept temp dirs
        await svc.call("bob", "DELETE", "vfolders/big/files?path=one.gib")


async def open_patch(svc, location, offset, data, length):
    """A PATCH that sent ``data`` of a ``length``-byte body and holds its connection open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    hdrs = {**svc.headers("alice", "PATCH", location, OCTETS), **TUS, "Content-Type": OCTETS,
            "Upload-Offset": str(offset), "Content-Length": str(length), "Host": f"127.0.0.1:{svc.port}"}
    writer.write(f"PATCH {location} HTTP/1.1\r\n".encode()
                 + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode() + b"\r\n" + data)
    await writer.drain()
    return reader, writer


async def root_of(svc, name="data"):
    code, info = await svc.call("alice", "GET", f"vfolders/{name}")
    assert code == 200
    return svc.storage.path("local", info["id"])


async def test_one_writer_per_upload_and_the_upload_area_disappears_when_idle(svc):
    root = await root_of(svc)
    blob = os.urandom(4 * MiB)
    location = (await create(svc, "one.bin", len(blob))).headers["Location"]
    assert os.path.isdir(os.path.join(root, ".upload"))
    reader, writer = await open_patch(svc, location, 0, blob[:MiB], len(blob))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while (await head_offset(svc, location))[0] == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        # a second writer at the current offset would interleave its bytes with the first's: refused
        offset = (await head_offset(svc, location))[0]
        resp = await patch(svc, location, offset, blob[offset:])
        assert resp.code == 423 and b"being written by another request" in resp.body, (resp.code, resp.body)
    finally:
        writer.close()
        await writer.wait_closed()
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the first request has ended once its lock is gone
        offset = (await head_offset(svc, location))[0]
        resp = await patch(svc, location, offset, blob[offset:])
        if resp.code != 423 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert resp.code == 204, resp.body
    got = await svc.raw("alice", "GET", "vfolders/data/download?path=one.bin")
    assert hashlib.sha256(got.body).digest() == hashlib.sha256(blob).digest()
    assert not os.path.exists(os.path.join(root, ".upload"))  # as Backend.AI: gone once nothing is pending


async def test_abandoned_uploads_free_their_reservation(svc):
    import json
    import time

    from backendai_hub.vfolders import upload_records as X

    root = await root_of(svc)
    old = (await create(svc, "old.bin", 30 * MiB)).headers["Location"]  # reserves 30 of the 32m quota
    assert (await create(svc, "new.bin", 8 * MiB)).code == 413
    upload_id = old.rsplit("/", 1)[1]
    record = os.path.join(root, ".upload", f"{upload_id}.json")
    data = json.load(open(record))
    data["created"] = time.time() - X.UPLOAD_TTL - 60
    json.dump(data, open(record, "w"))
    past = time.time() - X.UPLOAD_TTL - 60
    os.utime(os.path.join(root, ".upload", f"{upload_id}.part"), (past, past))
    assert (await create(svc, "new.bin", 8 * MiB)).code == 201
    assert (await svc.raw("alice", "HEAD", old, None, headers=TUS)).code == 404
    assert not os.path.exists(record)


async def test_damaged_upload_records_and_a_squatted_upload_area_are_clear_errors(svc):
    root = await root_of(svc)
    location = (await create(svc, "a.bin", 10)).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    with open(os.path.join(root, ".upload", f"{upload_id}.json"), "w") as f:
        f.write('{"foo": 1}')
    resp = await svc.raw("alice", "HEAD", location, None, headers=TUS)
    assert resp.code == 404
    assert (await create(svc, "b.bin", 10)).code == 201  # the folder's other uploads are unaffected
    for name in os.listdir(os.path.join(root, ".upload")):
        os.unlink(os.path.join(root, ".upload", name))
    os.rmdir(os.path.join(root, ".upload"))
    open(os.path.join(root, ".upload"), "w").close()  # a session made a file of that name
    resp = await create(svc, "c.bin", 10)
    assert resp.code == 409 and b"is not the upload directory" in resp.body, resp.body
    for bad in ("\u00b2", "1" * 21, "-1", "0x10"):
        resp = await svc.raw("alice", "POST", "vfolders/data/uploads", b"",
                             headers={**TUS, "Upload-Length": bad, "Upload-Metadata": meta(path="d.bin")})
        assert resp.code == 400 and b"Upload-Length" in resp.body, (bad, resp.code)


async def test_pipes_and_links_into_the_upload_area_are_refused(svc):
    root = await root_of(svc)
    code, _ = await svc.call("alice", "POST", "vfolders/data/invitations", {"emails": ["bob@example.com"],
                                                                             "permission": "ro"})
    assert code == 201
    code, inv = await svc.call("bob", "GET", "vfolder-invitations")
    assert (await svc.call("bob", "POST", f"vfolder-invitations/{inv['incoming'][0]['id']}/accept"))[0] == 200
    location = (await create(svc, "secret.bin", 100)).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    assert (await patch(svc, location, 0, b"TOPSECRET")).code == 204
    os.symlink(".upload", os.path.join(root, "ul"))  # what a session can do
    os.mkfifo(os.path.join(root, "pipe"))
    for actor, path in (("bob", "vfolders/data/files?path=ul"), ("bob", f"vfolders/data/download?path=ul/{upload_id}.part"),
                        ("bob", "vfolders/data/download?path=ul"), ("alice", f"vfolders/data/download?path=ul/{upload_id}.json")):
        code, payload = await svc.call(actor, "GET", path)
        assert code == 400 and "holds uploads in progress" in payload["message"], (path, payload)
    code, payload = await svc.call("alice", "POST", "vfolders/data/move", {"src": "ul/x", "dst": "y"})
    assert code in (400, 404), payload
    code, payload = await asyncio.wait_for(svc.call("bob", "GET", "vfolders/data/download?path=pipe"), 10)
    assert code == 400 and "is not a regular file" in payload["message"], payload
    # a folder archive skips what is not a file, a directory or a link
    resp = await svc.raw("bob", "GET", "vfolders/data/download?archive=zip")
    assert resp.code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(resp.body)).namelist()) == ["vfolder/"]


async def test_archives_keep_odd_names_and_a_failure_mid_stream_cuts_the_download(svc, monkeypatch):
    root = await root_of(svc)
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as f:  # not UTF-8
        f.write(b"latin-1 name")
    resp = await svc.raw("alice", "GET", "vfolders/data/download?archive=zip")
    assert resp.code == 200
    z = zipfile.ZipFile(io.BytesIO(resp.body))
    assert z.testzip() is None and z.read("vfolder/caf\ufffd.txt") == b"latin-1 name"
    resp = await svc.raw("alice", "GET", "vfolders/data/download?archive=tar")
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tf:
        assert tf.extractfile("vfolder/caf\udce9.txt").read() == b"latin-1 name"

    from backendai_hub.vfolders import downloads as X

    def failing(root, rel, fmt, out):
        out.write(b"x" * (3 * MiB))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(X, "write_archive", failing)
    try:
        resp = await svc.raw("alice", "GET", "vfolders/data/download?archive=tar")
        outcome = (resp.code, len(resp.body or b""))
    except Exception as e:  # noqa: BLE001 - what the client library says of a cut transfer
        outcome = "cut" if "Connection closed" in str(e) else repr(e)
    assert outcome == "cut"  # never a 200 with a complete-looking, truncated archive


async def test_transfer_tokens_never_reach_the_access_log(svc, caplog):
    import logging

    assert (await patch(svc, (await create(svc, "t.bin", 3)).headers["Location"], 0, b"abc")).code == 204
    code, got = await svc.call("alice", "POST", "/services/backendai/folders/data/request-download", {"path": "t.bin"})
    assert code == 200, got
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        resp = await svc.raw(None, "GET", f"/services/backendai/folders/_/tus/download?token={got['token']}")
        assert resp.code == 200 and resp.body == b"abc"
        for _ in range(100):  # the line is written when the handler finishes, just after the last byte
            lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
            if lines:
                break
            await asyncio.sleep(0.02)
    assert any("tus/download?token=%5Bredacted%5D" in line for line in lines), lines
    assert not any(got["token"] in line for line in lines)
