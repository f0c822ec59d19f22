#!/usr/bin/env bash
# metawsm-tick: tmux plugin entry file.
#
# Loaded by TPM (`set -g @plugin '…'`; TPM runs every *.tmux file with its output
# discarded) or directly with `run-shell '/abs/path/tmux/metawsm.tmux'` (the line
# install.sh adds to your tmux.conf).
#
# It only locates the binary and hands over to `metawsm-tick tmux-setup`, which reads
# the @metawsm-* options, rewrites #{metawsm_status} in status-left/status-right,
# registers its hooks (index 91) and arms the no-client timer. tmux-setup is
# idempotent, so reloading the config (loading this file twice) is harmless.
#
# Binary lookup order:
#   1. tmux option @metawsm-bin            (set -g @metawsm-bin '/abs/path/metawsm-tick')
#   2. environment variable METAWSM_BIN    (install.sh writes it into the run-shell line
#                                           when it installs outside ~/.local/bin)
#   3. metawsm-tick on the tmux server's PATH
#   4. ~/.local/bin/metawsm-tick
#   5. this repo's own build, the newer of <repo>/target/<host>/release/metawsm-tick (the
#      statically linked one build-release.sh makes on Linux) and target/release
#
# Contract: fast, prints nothing, always exits 0.

CURRENT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Outside tmux there is nothing to set up.
if [ -z "${TMUX:-}" ]; then
	if [ -t 2 ]; then
		echo "metawsm.tmux: run me from tmux: tmux run-shell '$CURRENT_DIR/metawsm.tmux'" >&2
	fi
	exit 0
fi

# "~/x" -> "$HOME/x" (options set in quotes keep a literal tilde).
expand_tilde() {
	case $1 in
	\~) printf '%s\n' "$HOME" ;;
	\~/*) printf '%s\n' "$HOME/${1#\~/}" ;;
	*) printf '%s\n' "$1" ;;
	esac
}

# Make a path absolute (PATH may contain relative entries).
absolute() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(cd "$(dirname "$1")" 2>/dev/null && pwd)" "$(basename "$1")" ;;
	esac
}

BIN=""
opt_bin="$(tmux show-option -gqv @metawsm-bin 2>/dev/null)"
if [ -n "$opt_bin" ]; then
	opt_bin="$(expand_tilde "$opt_bin")"
	if [ -x "$opt_bin" ] && [ ! -d "$opt_bin" ]; then
		BIN="$opt_bin"
	else
		tmux display-message "metawsm: @metawsm-bin is not an executable: $opt_bin" >/dev/null 2>&1
		exit 0
	fi
fi
if [ -z "$BIN" ] && [ -n "${METAWSM_BIN:-}" ] && [ -x "$METAWSM_BIN" ] && [ ! -d "$METAWSM_BIN" ]; then
	BIN="$METAWSM_BIN"
fi
if [ -z "$BIN" ]; then
	BIN="$(command -v metawsm-tick 2>/dev/null || true)"
	# `command -v` may return a non-path (alias/function) in odd shells; keep real files only.
	if [ -n "$BIN" ] && { [ ! -x "$BIN" ] || [ -d "$BIN" ]; }; then
		BIN=""
	fi
fi
if [ -z "$BIN" ] && [ -x "$HOME/.local/bin/metawsm-tick" ] && [ ! -d "$HOME/.local/bin/metawsm-tick" ]; then
	BIN="$HOME/.local/bin/metawsm-tick"
fi
if [ -z "$BIN" ]; then
	# The newest of the repo's builds: build-release.sh's per-target one, or cargo's.
	for candidate in "$CURRENT_DIR"/../target/*/release/metawsm-tick "$CURRENT_DIR/../target/release/metawsm-tick"; do
		if [ -x "$candidate" ] && [ ! -d "$candidate" ] && { [ -z "$BIN" ] || [ "$candidate" -nt "$BIN" ]; }; then
			BIN="$candidate"
		fi
	done
fi

if [ -z "$BIN" ]; then
	tmux display-message "metawsm: binary not found; run install.sh" >/dev/null 2>&1
	exit 0
fi

BIN="$(absolute "$BIN")"
# tmux-setup is silent and exits 0 by contract. We still do not `exec` it: under a
# plain `run-shell`, a non-zero status would make tmux print "'…' returned N" into some
# pane's view-mode, so this script always ends with its own `exit 0`.
"$BIN" tmux-setup --bin "$BIN" >/dev/null 2>&1 </dev/null
exit 0
