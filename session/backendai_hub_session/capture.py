"""Capture: every execute_request that reaches a kernel through this server's websocket (and its
execute_reply), and each line typed in a terminal, as code-log records handed to a ``sink``."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable

from jupyter_server.services.kernels.connection.base import deserialize_binary_message, deserialize_msg_from_ws_v1
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from .buffer import new_record_id
from .lines import LineAssembler

log = logging.getLogger("backendai_hub_session")

MAX_CODE_BYTES = 64 * 1024  # as the service stores; size and SHA-256 still cover the whole code
V1 = "v1.kernel.websocket.jupyter.org"

Sink = Callable[[dict], None]
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def code_fields(code: str) -> dict[str, Any]:
    raw = code.encode("utf-8", "surrogatepass")
    out = {"code": code, "code_size": len(raw), "code_sha256": hashlib.sha256(raw).hexdigest()}
    if len(raw) > MAX_CODE_BYTES:
        out["code"] = raw[:MAX_CODE_BYTES].decode("utf-8", "ignore")
    return out


def emit(record: dict) -> None:
    if _sink is not None:
        try:
            _sink(record)
        except Exception:  # noqa: BLE001 - recording must never break the user's kernel traffic
            log.exception("code log: could not buffer a record")


class LoggingConnection(ZMQChannelsWebsocketConnection):
    """The server's kernel websocket connection, recording executions on the way through.

    Requests are held until their reply (status, execution count); one still waiting when the
    connection closes (tab closed, kernel died) is recorded with status ``unknown``.
    """

    _pending: dict[str, dict]

    def _unpack(self, part: Any) -> dict:
        try:
            value = self.session.unpack(part)
        except Exception:  # noqa: BLE001 - not ours to judge; the kernel will
            return {}
        return value if isinstance(value, dict) else {}

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        try:
            self._note_request(incoming_msg)
        except Exception:  # noqa: BLE001
            log.exception("code log: could not read an incoming message")
        super().handle_incoming_message(incoming_msg)

    def _note_request(self, ws_msg: Any) -> None:
        if not self.channels:
            return
        if self.subprotocol == V1:
            channel, msg_list = deserialize_msg_from_ws_v1(ws_msg)
            if channel != "shell":
                return
            header = self._unpack(msg_list[0])
            if header.get("msg_type") != "execute_request":
                return
            content = self._unpack(msg_list[3])
        else:
            if isinstance(ws_msg, bytes):
                msg = deserialize_binary_message(ws_msg)
            else:
                msg = json.loads(ws_msg)
            if (msg.get("channel") or "shell") != "shell":
                return
            header, content = msg.get("header") or {}, msg.get("content") or {}
            if header.get("msg_type") != "execute_request":
                return
        code = content.get("code")
        msg_id = header.get("msg_id")
        if not isinstance(code, str) or not isinstance(msg_id, str):
            return
        if not hasattr(self, "_pending"):
            self._pending = {}
        self._pending[msg_id] = {"id": new_record_id("cell"), "kind": "cell", "kernel_id": self.kernel_id,
                                 "msg_id": msg_id[:128], "started_at": _now(), **code_fields(code)}

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list) -> None:
        if getattr(self, "_pending", None):
            try:
                self._note_reply(stream, outgoing_msg)
            except Exception:  # noqa: BLE001
                log.exception("code log: could not read an outgoing message")
        super().handle_outgoing_message(stream, outgoing_msg)

    def _note_reply(self, stream: Any, msg_list: list) -> None:
        channel = stream if isinstance(stream, str) else getattr(stream, "channel", None)
        if channel != "shell":
            return
        _, fed = self.session.feed_identities(msg_list)
        parts = fed[1:]  # [signature, header, parent_header, metadata, content, buffers...] without the signature
        header = self._unpack(parts[0])
        if header.get("msg_type") != "execute_reply":
            return
        parent = self._unpack(parts[1])
        record = self._pending.pop(parent.get("msg_id"), None)
        if record is None:
            return
        content = self._unpack(parts[3])
        status = content.get("status")
        count = content.get("execution_count")
        record.update(status=status if status in ("ok", "error", "aborted") else "unknown", ended_at=_now(),
                      execution_count=count if isinstance(count, int) and count >= 0 else None)
        emit(record)

    def disconnect(self) -> None:
        for record in getattr(self, "_pending", {}).values():
            emit({**record, "status": "unknown", "ended_at": None})
        self._pending = {}
        super().disconnect()


# -- terminals -------------------------------------------------------------------------------------------

def patch_terminals() -> bool:
    """Record the lines typed into Jupyter's terminals (jupyter_server_terminals' websocket)."""
    try:
        from jupyter_server_terminals.handlers import TermSocket
    except ImportError:
        return False
    if getattr(TermSocket, "_backendai_code_log", False):
        return True
    original = TermSocket.on_message

    async def on_message(self, message):
        try:
            command = json.loads(message)
            if isinstance(command, list) and len(command) > 1 and command[0] == "stdin" and isinstance(command[1], str):
                lines = self.__dict__.setdefault("_code_log_lines", LineAssembler())
                for line in lines.feed(command[1]):
                    emit({"id": new_record_id("term"), "kind": "terminal", "status": "unknown",
                          "kernel_id": f"terminal:{getattr(self, 'term_name', '')}"[:128], "msg_id": None,
                          "started_at": _now(), "ended_at": None, **code_fields(line)})
        except Exception:  # noqa: BLE001
            log.exception("code log: could not read terminal input")
        await original(self, message)

    TermSocket.on_message = on_message
    TermSocket._backendai_code_log = True
    return True
