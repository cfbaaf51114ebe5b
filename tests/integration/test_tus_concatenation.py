"""tus concatenation on a real service: partial uploads sent side by side, joined into one file when the
last one ends (or when the final upload is created after them), checked by SHA-256; the rules of naming
partials; aborting a final takes its parts along; two parts ending at once join the file once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

from tests.integration.service_harness import service_fixtures
from tests.integration.test_vfolder_transfer import TUS, create, cut_patch, head_offset, meta, patch
from tests.integration.vfolder_harness import API, Service

MiB = 1 << 20


async def with_data_folder(svc):
    code, _ = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "32m"})
    assert code == 201


template, svc = service_fixtures(Service, setup=with_data_folder)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def partial(svc, length: int, actor: str = "alice") -> str:
    resp = await svc.raw(actor, "POST", "vfolders/data/uploads", b"",
                         headers={**TUS, "Upload-Length": str(length), "Upload-Concat": "partial"})
    assert resp.code == 201, resp.body
    assert json.loads(resp.body)["path"] == ""  # a part has no target of its own
    return resp.headers["Location"]


async def final(svc, path: str, locations: list[str], actor: str = "alice", **headers):
    return await svc.raw(actor, "POST", "vfolders/data/uploads", b"",
                         headers={**TUS, "Upload-Metadata": meta(path=path),
                                  "Upload-Concat": "final;" + " ".join(locations), **headers})


async def listing(svc) -> list[tuple[str, int]]:
    code, files = await svc.call("alice", "GET", "vfolders/data/files")
    assert code == 200
    return sorted((f["name"], f["size"]) for f in files["items"])


async def download(svc, path: str) -> bytes:
    resp = await svc.raw("alice", "GET", f"vfolders/data/download?path={path}")
    assert resp.code == 200, resp.code
    return resp.body


async def test_partials_sent_side_by_side_join_into_the_file_when_the_final_is_created(svc):
    resp = await svc.raw("alice", "OPTIONS", "vfolders/data/uploads", None, headers=TUS)
    assert "concatenation" in resp.headers["Tus-Extension"].split(",")
    blob = os.urandom(6 * MiB + 123)
    cuts = [(0, 2 * MiB), (2 * MiB, 4 * MiB), (4 * MiB, len(blob))]
    locations = [await partial(svc, end - start) for start, end in cuts]
    head = await svc.raw("alice", "HEAD", locations[0], None, headers=TUS)
    assert head.headers["Upload-Concat"] == "partial"
    # all three at once; the middle one's connection drops and it resumes where the server says
    await cut_patch(svc, locations[1], 0, blob[2 * MiB:4 * MiB], send=MiB)
    sent = await asyncio.gather(patch(svc, locations[0], 0, blob[:2 * MiB]),
                                patch(svc, locations[2], 0, blob[4 * MiB:]))
    assert [r.code for r in sent] == [204, 204]
    for _ in range(100):  # the cut request's writer lets go
        offset, _ = await head_offset(svc, locations[1])
        resp = await patch(svc, locations[1], offset, blob[2 * MiB + offset:4 * MiB])
        if resp.code != 423:
            break
        await asyncio.sleep(0.05)
    assert resp.code == 204, resp.body
    assert await listing(svc) == []  # parts are no file of anyone's
    resp = await final(svc, "joined.bin", locations)
    assert resp.code == 201, resp.body
    answer = json.loads(resp.body)
    assert (answer["path"], answer["length"], answer["complete"]) == ("joined.bin", len(blob), True)
    assert await listing(svc) == [("joined.bin", len(blob))]
    assert sha256(await download(svc, "joined.bin")) == sha256(blob)
    for location in locations + [resp.headers["Location"]]:  # joined: none of them is pending any more
        assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 404
    code, info = await svc.call("alice", "GET", "vfolders/data")
    assert (info["size"], info["file_count"]) == (len(blob), 1)


async def test_a_final_created_first_joins_when_its_last_part_ends(svc):
    blob = os.urandom(3 * MiB)
    locations = [await partial(svc, MiB), await partial(svc, 2 * MiB)]
    assert (await patch(svc, locations[1], 0, blob[MiB:])).code == 204
    resp = await final(svc, "late.bin", locations)
    assert resp.code == 201 and json.loads(resp.body)["complete"] is False
    final_url = resp.headers["Location"]
    head = await svc.raw("alice", "HEAD", final_url, None, headers=TUS)
    assert head.code == 200
    assert head.headers["Upload-Concat"] == "final;" + " ".join(locations)
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (str(2 * MiB), str(3 * MiB))
    # a final takes no bytes of its own
    resp = await patch(svc, final_url, 2 * MiB, b"x")
    assert resp.code == 403 and b"its bytes go to its partial uploads" in resp.body
    assert await listing(svc) == []
    assert (await patch(svc, locations[0], 0, blob[:MiB // 2])).code == 204
    assert await listing(svc) == []  # not before the last byte
    assert (await patch(svc, locations[0], MiB // 2, blob[MiB // 2:MiB])).code == 204
    assert sha256(await download(svc, "late.bin")) == sha256(blob)
    assert (await svc.raw("alice", "HEAD", final_url, None, headers=TUS)).code == 404


async def test_two_parts_ending_at_once_join_the_file_once(svc):
    blob = os.urandom(8 * MiB)
    locations = [await partial(svc, 4 * MiB), await partial(svc, 4 * MiB)]
    assert (await patch(svc, locations[0], 0, blob[:4 * MiB - 1])).code == 204
    assert (await patch(svc, locations[1], 0, blob[4 * MiB:-1])).code == 204
    assert (await final(svc, "race.bin", locations)).code == 201
    ends = await asyncio.gather(patch(svc, locations[0], 4 * MiB - 1, blob[4 * MiB - 1:4 * MiB]),
                                patch(svc, locations[1], 4 * MiB - 1, blob[-1:]))
    assert [r.code for r in ends] == [204, 204]
    assert await listing(svc) == [("race.bin", len(blob))]
    assert sha256(await download(svc, "race.bin")) == sha256(blob)


async def test_the_rules_of_naming_partials(svc):
    mine = await partial(svc, 4)
    bobs_folder = "bobs"
    assert (await svc.call("bob", "POST", "vfolders", {"name": bobs_folder}))[0] == 201
    plain = (await create(svc, "plain.bin", 4)).headers["Location"]
    # a final names partials only, each once, by their URLs; its length is theirs
    cases = [
        ("partial;x", 400, "Upload-Concat"), ("final;", 400, "Upload-Concat"), ("final", 400, "Upload-Concat"),
        ("final;not-an-upload", 400, "Upload-Concat"), (f"final;{mine} {mine}", 400, "Upload-Concat"),
        (f"final;{plain}", 409, "Upload-Concat"), (f"final;{API}vfolders/data/uploads/{'0' * 32}", 404, "upload"),
    ]
    for header, code, field in cases:
        resp = await svc.raw("alice", "POST", "vfolders/data/uploads", b"",
                             headers={**TUS, "Upload-Metadata": meta(path="f"), "Upload-Concat": header})
        assert (resp.code, json.loads(resp.body)["field"]) == (code, field), (header, resp.body)
    resp = await final(svc, "f", [mine], **{"Upload-Length": "4"})
    assert (resp.code, json.loads(resp.body)["field"]) == (400, "Upload-Length")
    resp = await final(svc, "", [mine])
    assert (resp.code, json.loads(resp.body)["field"]) == (400, "path")
    # another user's partial reads as unknown, here or in his own folder
    resp = await final(svc, "f", [mine], actor="bob")
    assert resp.code == 404
    # once named, a partial is taken; the target's rules are a plain upload's
    assert (await final(svc, "one.bin", [mine])).code == 201
    resp = await final(svc, "two.bin", [mine])
    assert resp.code == 409 and b"is already part of upload" in resp.body
    other = await partial(svc, 1)
    assert (await final(svc, "plain.bin", [other])).code == 201  # plain.bin is still pending, not a file
    assert (await patch(svc, plain, 0, b"abcd")).code == 204
    resp = await patch(svc, other, 0, b"z")
    assert resp.code == 409 and b"was created meanwhile; upload with overwrite" in resp.body
    # the join was refused: the part is kept whole, to finish once the name is free
    assert await head_offset(svc, other) == (1, 1)
    assert sha256(await download(svc, "plain.bin")) == sha256(b"abcd")


async def test_aborting_a_final_takes_its_parts_and_their_reservation_along(svc):
    parts = [await partial(svc, 10 * MiB), await partial(svc, 10 * MiB)]
    assert (await patch(svc, parts[0], 0, os.urandom(MiB))).code == 204
    resp = await create(svc, "more.bin", 20 * MiB)  # 32 MiB quota: the parts reserve 20
    assert resp.code == 413
    resp = await final(svc, "big.bin", parts)
    assert resp.code == 201
    assert (await svc.raw("alice", "DELETE", resp.headers["Location"], None, headers=TUS)).code == 204
    for location in parts:
        assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 404
    assert (await create(svc, "more.bin", 20 * MiB)).code == 201


async def test_a_record_naming_parts_by_path_is_damaged_not_followed(svc):
    """Upload records live inside the folder: one that names its parts or its final by anything but an
    upload id (a path out of the upload directory) reads as damaged, and aborting it removes nothing else."""
    from tests.integration.test_vfolder_transfer import root_of

    root = await root_of(svc)
    location = await partial(svc, 4)
    upload_id = location.rsplit("/", 1)[1]
    with open(os.path.join(root, "victim.part"), "w") as f:
        f.write("keep me")
    record = os.path.join(root, ".upload", f"{upload_id}.json")
    for forged in ({"concat": "final", "parts": ["../victim"]}, {"final": "../victim"}, {"concat": "other"}):
        with open(record) as f:
            data = {**json.load(f), **forged}
        with open(record, "w") as f:
            json.dump(data, f)
        assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 404
        assert (await svc.raw("alice", "DELETE", location, None, headers=TUS)).code == 404
        with open(record, "w") as f:
            json.dump({**data, "concat": "partial", "parts": None, "final": None}, f)
    with open(os.path.join(root, "victim.part")) as f:
        assert f.read() == "keep me"


async def test_an_upload_directory_a_session_made_is_not_trusted(svc):
    """A session may rename the folder's .upload away and make one of its own (its user's, or writable
    by others): its records are read as nobody's, and no upload goes into it."""
    from tests.integration.test_vfolder_transfer import root_of

    root = await root_of(svc)
    location = await partial(svc, 4)
    updir = os.path.join(root, ".upload")
    os.chown(updir, 1000, 1000)  # the session's user
    assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 404
    resp = await create(svc, "x.bin", 1)
    assert resp.code == 409 and b"is not the upload directory" in resp.body
    os.chown(updir, os.geteuid(), os.getegid())
    os.chmod(updir, 0o777)
    assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 404
    os.chmod(updir, 0o700)
    assert (await svc.raw("alice", "HEAD", location, None, headers=TUS)).code == 200
