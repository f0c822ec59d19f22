#!/bin/sh
# metawsm-tick: wrapper tmux can call instead of the binary, e.g.
#     set-hook -g 'pane-died[91]' 'run-shell -b "/abs/hooks/tmux-hook.sh pane-died #{hook_pane} #{pane_dead_status}"'
# It runs `metawsm-tick hook "$@"`. Silent and always exits 0: tmux writes any output,
# and a "returned N" message, into some pane's view-mode.
# (metawsm-tick tmux-setup registers its own hooks with the binary's absolute path;
# this wrapper is for hand-written hooks and for setups where the path changes.)
#
# Binary lookup: @metawsm-bin (when inside tmux), $METAWSM_BIN, metawsm-tick on PATH,
# ~/.local/bin/metawsm-tick, <repo>/target/release/metawsm-tick.

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
"$BIN" hook "$@" </dev/null >/dev/null 2>&1
exit 0
