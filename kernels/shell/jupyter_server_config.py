# The shell image's server: Jupyter's own terminals (terminado), each one attached to the same tmux
# session, so a browser reload (or a second tab) finds the shell as it was left.
c = get_config()  # noqa: F821 - provided by traitlets
c.ServerApp.terminado_settings = {"shell_command": ["tmux", "-u", "new-session", "-A", "-s", "shell"]}
c.ServerApp.terminals_enabled = True
