# backendai-hub: tell the user, in every interactive shell, when the session records what they run.
# Inert unless the spawner set BACKENDAI_HUB_CODE_LOG=1 (the session's domain or group has code_log on).
if [ "${BACKENDAI_HUB_CODE_LOG:-}" = 1 ] && [ -z "${BACKENDAI_HUB_CODE_LOG_NOTICE:-}" ] && [ -t 1 ]; then
  export BACKENDAI_HUB_CODE_LOG_NOTICE=shown
  printf '\033[1;41;97m %s \033[0m\n' \
    "Code logging is on: commands typed in this terminal and code run in this session's kernels are recorded."
fi
