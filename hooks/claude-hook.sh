#!/bin/sh
# metawsm-tick: Claude Code hook command. Usage: claude-hook.sh working|waiting|done
#
# Reports the agent's state for the tmux pane it runs in ($TMUX_PANE, inherited from
# the pane Claude Code was started in) with `metawsm-tick signal <state>`.
# Wired up by hooks/claude-hooks.json (see there / the README for how to enable it).
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

find_bin() {
	if [ -n "${TMUX:-}" ]; then
		b=$(tmux show-option -gqv @metawsm-bin 2>/dev/null)
		case $b in \~/*) b="$HOME/${b#\~/}" ;; esac
		if [ -n "$b" ] && [ -x "$b" ] && [ ! -d "$b" ]; then printf '%s\n' "$b"; return 0; fi
	fi
	if [ -n "${METAWSM_BIN:-}" ] && [ -x "$METAWSM_BIN" ] && [ ! -d "$METAWSM_BIN" ]; then
		printf '%s\n' "$METAWSM_BIN"; return 0
	fi
	b=$(command -v metawsm-tick 2>/dev/null)
	if [ -n "$b" ] && [ -x "$b" ] && [ ! -d "$b" ]; then printf '%s\n' "$b"; return 0; fi
	here=$(cd "$(dirname "$0")" 2>/dev/null && pwd)
	for b in "$HOME/.local/bin/metawsm-tick" "$here/../target/release/metawsm-tick"; do
		if [ -x "$b" ] && [ ! -d "$b" ]; then printf '%s\n' "$b"; return 0; fi
	done
	return 1
}

BIN=$(find_bin) || exit 0
if command -v timeout >/dev/null 2>&1; then
	timeout 2 "$BIN" signal "$state" </dev/null >/dev/null 2>&1
elif command -v gtimeout >/dev/null 2>&1; then
	gtimeout 2 "$BIN" signal "$state" </dev/null >/dev/null 2>&1
else
	"$BIN" signal "$state" </dev/null >/dev/null 2>&1
fi
exit 0
