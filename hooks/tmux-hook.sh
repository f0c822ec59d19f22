#!/bin/sh
# metawsm-tick: wrapper tmux can call instead of the binary, e.g.
#     set-hook -g 'pane-died[91]' 'run-shell -b "/abs/hooks/tmux-hook.sh pane-died #{hook_pane} #{pane_dead_status}"'
# It runs `metawsm-tick hook "$@"`. Silent and always exits 0: tmux writes any output,
# and a "returned N" message, into some pane's view-mode.
# (metawsm-tick tmux-setup registers its own hooks with the binary's absolute path;
# this wrapper is for hand-written hooks and for setups where the path changes.)

# The binary: $METAWSM_BIN, else metawsm-tick on PATH, else the install default.
# (`metawsm-tick init tmux|claude|codex` prints configuration that names it directly.)
BIN=${METAWSM_BIN:-$(command -v metawsm-tick 2>/dev/null)}
[ -n "$BIN" ] || BIN=$HOME/.local/bin/metawsm-tick
{ [ -x "$BIN" ] && [ ! -d "$BIN" ]; } || exit 0
"$BIN" hook "$@" </dev/null >/dev/null 2>&1
exit 0
