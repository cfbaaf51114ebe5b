"""PURE: keystrokes sent to a terminal, as the lines a user entered."""

from __future__ import annotations

MAX_LINE = 64 * 1024


class LineAssembler:
    """Keystrokes sent to a terminal, as the lines entered: Enter ends a line, Backspace removes the
    last character, escape sequences (arrows, function keys) are dropped. Tab completion and history
    recall happen in the shell, so such a line is recorded as typed, not as run."""

    MAX = MAX_LINE

    def __init__(self):
        self.line = ""
        self._esc = ""  # "", "esc" (after ESC), "csi" (ESC [ ... final byte), "ss3" (ESC O x)

    def feed(self, data: str) -> list[str]:
        out = []
        for ch in data:
            if self._esc == "esc":
                self._esc = {"[": "csi", "O": "ss3"}.get(ch, "")
                continue
            if self._esc == "csi":
                if "@" <= ch <= "~":
                    self._esc = ""
                continue
            if self._esc == "ss3":
                self._esc = ""
                continue
            if ch == "\x1b":
                self._esc = "esc"
            elif ch in "\r\n":
                if self.line.strip():
                    out.append(self.line)
                self.line = ""
            elif ch in "\x7f\b":
                self.line = self.line[:-1]
            elif ch == "\x03":  # Ctrl-C abandons the line
                self.line = ""
            elif ch == "\x15":  # Ctrl-U
                self.line = ""
            elif ch >= " " or ch == "\t":
                if len(self.line) < self.MAX:
                    self.line += ch
        return out
