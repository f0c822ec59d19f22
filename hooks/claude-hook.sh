#!/bin/sh
# metawsm-tick: Claude Code hook command. Usage: claude-hook.sh working|waiting|done
#
# Reports the agent's state for the tmux pane it runs in ($TMUX_PANE, inherited from
# the pane Claude Code was started in) with `metawsm-tick signal <state>`.
# Wired up by hooks/claude-hooks.json (see there / the README for how to enable it);
# `metawsm-tick init claude` prints the same hooks calling the binary directly.
#
# Silent and ALWAYS exits 0: Claude Code shows hook stdout (UserPromptSubmit adds it
# to the prompt) and treats exit code 2 as "block". The hook's JSON on stdin is not
# needed and is not read. Bounded to ~2 s with `timeout` when available.

case ${1:-} in
working | waiting | done) state=$1 ;;
*) exit 0 ;;
esac
# Not inside tmux: nothing to report.
[ -n "${TMUX_PANE:-}" ] || exit 0

# The binary: $METAWSM_BIN, else metawsm-tick on PATH, else the install default.
# (`metawsm-tick init tmux|claude|codex` prints configuration that names it directly.)
BIN=${METAWSM_BIN:-$(command -v metawsm-tick 2>/dev/null)}
[ -n "$BIN" ] || BIN=$HOME/.local/bin/metawsm-tick
{ [ -x "$BIN" ] && [ ! -d "$BIN" ]; } || exit 0
if command -v timeout >/dev/null 2>&1; then
	timeout 2 "$BIN" signal "$state" </dev/null >/dev/null 2>&1
elif command -v gtimeout >/dev/null 2>&1; then
	gtimeout 2 "$BIN" signal "$state" </dev/null >/dev/null 2>&1
else
	"$BIN" signal "$state" </dev/null >/dev/null 2>&1
fi
exit 0
