#!/usr/bin/env bash
# install.sh — build and install metawsm-tick, and load it into tmux.
# Run `./install.sh --help` for the options. Works from any directory.
#
# Compatible with bash 3.2 (stock macOS): no arrays, mapfile or ${var,,}.
set -euo pipefail

PROG=install.sh
MARKER='# metawsm-tick (added by install.sh)'
HOOK_NAMES='pane-died pane-exited session-closed alert-silence client-attached'

usage() {
	cat <<'EOF'
Usage: ./install.sh [options]

Builds metawsm-tick (./build-release.sh: cargo build --release --locked, statically
linked on Linux with glibc, where it starts faster), installs the binary, and adds one
line to your tmux config that loads the plugin:
    run-shell '<repo>/tmux/metawsm.tmux' # metawsm-tick (added by install.sh)
The line goes before TPM's `run '~/.tmux/plugins/tpm/tpm'` if you have one (TPM must
stay last), else at the end of ~/.tmux.conf (or ~/.config/tmux/tmux.conf if that is
the one you use). If a tmux server is running, the plugin is loaded into it right away.
Finally `metawsm-tick doctor` is run and its report printed.

Options:
  --prefix DIR     install the binary to DIR/bin. Default: $PREFIX/bin if the
                   PREFIX environment variable is set, else ~/.local/bin.
  --no-tmux-conf   do not touch the tmux config (and do not load the plugin into a
                   running server); useful with TPM or a hand-written config.
  --yes, -y        do not ask before editing the tmux config. Without --yes the
                   question (y/N) is asked only when stdin is a terminal; when stdin
                   is not a terminal (scripts, CI) the line is added without asking.
  --no-build       do not run cargo; install the existing release binary: the newer
                   of target/release and target/<host>/release (the static build;
                   honours CARGO_TARGET_DIR).
  --uninstall      remove the installed binary and the marked tmux.conf line, leaving
                   the config byte-for-byte as it was before the install. The state
                   directory and the database are never deleted.
  -h, --help       show this help.

Environment:
  PREFIX                  default for --prefix.
  METAWSM_INSTALL_BINARY  install this prebuilt binary instead of building (for
                          tests and packagers); implies --no-build.
  XDG_STATE_HOME          install records are kept in
                          ${XDG_STATE_HOME:-~/.local/state}/metawsm/.

Running it twice changes nothing the second time. Exit status: 0 ok, 1 error,
2 bad usage.
EOF
}

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}
usage_error() {
	echo "$PROG: $*" >&2
	exit 2
}
say() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------- arguments
opt_prefix=""
have_prefix=0
no_tmux_conf=0
assume_yes=0
do_uninstall=0
no_build=0
while [ $# -gt 0 ]; do
	case $1 in
	--prefix)
		[ $# -ge 2 ] || usage_error "option --prefix needs a directory (try --help)"
		opt_prefix=$2
		have_prefix=1
		shift 2
		;;
	--prefix=*)
		opt_prefix=${1#--prefix=}
		have_prefix=1
		shift
		;;
	--no-tmux-conf) no_tmux_conf=1; shift ;;
	--yes | -y) assume_yes=1; shift ;;
	--uninstall) do_uninstall=1; shift ;;
	--no-build) no_build=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) usage_error "unknown option: $1 (try --help)" ;;
	*) usage_error "unexpected argument: $1 (try --help)" ;;
	esac
done
if [ "$have_prefix" = 1 ] && [ -z "$opt_prefix" ]; then
	usage_error "option --prefix needs a non-empty directory (try --help)"
fi

# ---------------------------------------------------------------- paths
[ -n "${HOME:-}" ] || die "HOME is not set"
ORIG_PWD=$(pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cd "$REPO"

# Absolute path, relative ones taken from the directory the user ran us in.
from_orig() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$ORIG_PWD/$1" ;;
	esac
}
strip_slash() {
	local p=$1
	while [ "${#p}" -gt 1 ] && [ "${p%/}" != "$p" ]; do p=${p%/}; done
	printf '%s\n' "$p"
}

if [ "$have_prefix" = 1 ]; then
	BIN_DIR=$(strip_slash "$(from_orig "$opt_prefix")/bin")
elif [ -n "${PREFIX:-}" ]; then
	BIN_DIR=$(strip_slash "$(from_orig "$PREFIX")/bin")
else
	BIN_DIR="$HOME/.local/bin"
fi
DEST="$BIN_DIR/metawsm-tick"
DEFAULT_BIN_DIR="$HOME/.local/bin"

case ${XDG_STATE_HOME:-} in
/*) STATE_DIR="$XDG_STATE_HOME/metawsm" ;;
*) STATE_DIR="$HOME/.local/state/metawsm" ;; # unset or relative (invalid per XDG)
esac
RECORD="$STATE_DIR/install-record"
BACKUP="$STATE_DIR/tmux.conf.before-install"
ENTRY="$REPO/tmux/metawsm.tmux"

TMPFILE=""
cleanup() { if [ -n "$TMPFILE" ]; then rm -f "$TMPFILE"; fi; }
trap cleanup EXIT

# The tmux config tmux 3.3 would read: the first of ~/.tmux.conf,
# $XDG_CONFIG_HOME/tmux/tmux.conf, ~/.config/tmux/tmux.conf; ~/.tmux.conf if none.
find_conf() {
	if [ -e "$HOME/.tmux.conf" ] || [ -L "$HOME/.tmux.conf" ]; then
		printf '%s\n' "$HOME/.tmux.conf"
	elif [ -n "${XDG_CONFIG_HOME:-}" ] && [ -f "$XDG_CONFIG_HOME/tmux/tmux.conf" ]; then
		printf '%s\n' "$XDG_CONFIG_HOME/tmux/tmux.conf"
	elif [ -f "$HOME/.config/tmux/tmux.conf" ]; then
		printf '%s\n' "$HOME/.config/tmux/tmux.conf"
	else
		printf '%s\n' "$HOME/.tmux.conf"
	fi
}

# 1 if the file is non-empty and its last byte is not a newline.
lacks_final_newline() {
	[ -s "$1" ] && [ "$(tail -c 1 "$1" | wc -l | tr -d ' ')" = 0 ]
}

# Run a command with a time limit when timeout(1) exists.
with_timeout() {
	local secs=$1
	shift
	if command -v timeout >/dev/null 2>&1; then
		timeout "$secs" "$@"
	elif command -v gtimeout >/dev/null 2>&1; then
		gtimeout "$secs" "$@"
	else
		"$@"
	fi
}

# The server metawsm-tick itself would talk to: METAWSM_TMUX_SOCKET, else the one in
# $TMUX ("socket,pid,session"), else tmux's default server.
TMUX_SOCKET=${METAWSM_TMUX_SOCKET:-}
if [ -z "$TMUX_SOCKET" ] && [ -n "${TMUX:-}" ]; then
	TMUX_SOCKET=${TMUX%%,*}
fi
# "tmux" or "tmux -S <socket>", for messages the user may copy.
if [ -n "$TMUX_SOCKET" ]; then
	TMUX_WORDS="tmux -S '$TMUX_SOCKET'"
	SERVER_NAME="server $TMUX_SOCKET"
else
	TMUX_WORDS="tmux"
	SERVER_NAME="server"
fi

tmux_running() {
	command -v tmux >/dev/null 2>&1 && tmux ${TMUX_SOCKET:+-S "$TMUX_SOCKET"} list-sessions >/dev/null 2>&1
}

# The state directory holds the database and pane text: private (0700) whoever makes it.
make_state_dir() {
	(umask 077 && mkdir -p "$STATE_DIR") && chmod 700 "$STATE_DIR"
}

# A path as a word for `sh -c` inside a single-quoted tmux string. Plain paths stay
# as they are; paths with spaces or shell metacharacters get double quotes. Characters
# that cannot be expressed there safely are refused.
sh_word() {
	case $1 in
	*[\'\"\$\`\\\#]* | *"
"*) return 1 ;;
	esac
	case $1 in
	*[!A-Za-z0-9/._+,:@%=~-]*) printf '"%s"\n' "$1" ;;
	*) printf '%s\n' "$1" ;;
	esac
}

# ---------------------------------------------------------------- install record
# key=value lines: bin=PATH (repeatable), conf=PATH, conf_created=0|1,
# conf_added_newline=0|1.
rec_bins=""
rec_conf=""
rec_conf_created=0
rec_conf_added_newline=0
load_record() {
	[ -f "$RECORD" ] || return 0
	local key val
	while IFS='=' read -r key val || [ -n "$key" ]; do
		case $key in
		bin) rec_bins="$rec_bins$val
" ;;
		conf) rec_conf=$val ;;
		conf_created) rec_conf_created=$val ;;
		conf_added_newline) rec_conf_added_newline=$val ;;
		esac
	done <"$RECORD"
}
write_record() {
	local content="" b
	while IFS= read -r b; do
		[ -n "$b" ] && content="${content}bin=$b
"
	done <<EOF
$rec_bins
EOF
	if [ -n "$rec_conf" ]; then
		content="${content}conf=$rec_conf
conf_created=$rec_conf_created
conf_added_newline=$rec_conf_added_newline
"
	fi
	if [ -f "$RECORD" ] && [ "$(cat "$RECORD")
" = "$content" ]; then
		return 0
	fi
	make_state_dir
	printf '%s' "$content" >"$RECORD.tmp.$$"
	mv -f "$RECORD.tmp.$$" "$RECORD"
}
record_has_bin() {
	case "
$rec_bins" in
	*"
$1
"*) return 0 ;;
	esac
	return 1
}

# ---------------------------------------------------------------- tmux.conf editing
# First line that runs TPM (`run '~/.tmux/plugins/tpm/tpm'`, `run-shell -b …tpm/tpm`).
tpm_line_number() {
	awk '/^[ \t]*run(-shell)?[ \t]/ && index($0, "tpm/tpm") { print NR; exit }' "$1"
}

# Copy $TMPFILE over FILE in place (keeps symlinks, owner and mode).
replace_contents() {
	cat "$TMPFILE" >"$1"
	rm -f "$TMPFILE"
	TMPFILE=""
}

# Insert LINE before line AT (0 = append, adding a newline first if the file lacks one).
conf_insert() {
	local conf=$1 line=$2 at=$3 trail=1
	if lacks_final_newline "$conf"; then trail=0; fi
	TMPFILE=$(mktemp "${TMPDIR:-/tmp}/metawsm-conf.XXXXXX")
	MW_LINE=$line MW_AT=$at MW_TRAIL=$trail awk '
		BEGIN { line = ENVIRON["MW_LINE"]; at = ENVIRON["MW_AT"] + 0; trail = ENVIRON["MW_TRAIL"] + 0; n = 0 }
		function out(s) { if (n++) printf "\n"; printf "%s", s }
		NR == at { out(line) }
		{ out($0) }
		END {
			if (at == 0) { if (n) printf "\n"; printf "%s\n", line }
			else if (n && trail) printf "\n"
		}' "$conf" >"$TMPFILE"
	replace_contents "$conf"
}

# Replace the marked line(s) with LINE (same position).
conf_update() {
	local conf=$1 line=$2 trail=1
	if lacks_final_newline "$conf"; then trail=0; fi
	TMPFILE=$(mktemp "${TMPDIR:-/tmp}/metawsm-conf.XXXXXX")
	MW_LINE=$line MW_MARK=$MARKER MW_TRAIL=$trail awk '
		BEGIN { line = ENVIRON["MW_LINE"]; m = ENVIRON["MW_MARK"]; trail = ENVIRON["MW_TRAIL"] + 0; n = 0; done = 0 }
		function out(s) { if (n++) printf "\n"; printf "%s", s }
		length($0) >= length(m) && substr($0, length($0) - length(m) + 1) == m { if (!done) out(line); done = 1; next }
		{ out($0) }
		END { if (n && trail) printf "\n" }' "$conf" >"$TMPFILE"
	replace_contents "$conf"
}

# Remove the marked line(s). DROP_NL=1: also drop the newline install.sh added before
# an appended line (only when the marked line is still the last one).
conf_remove() {
	local conf=$1 drop_nl=$2 trail=1
	if lacks_final_newline "$conf"; then trail=0; fi
	if [ "$drop_nl" = 1 ] && [ "$trail" = 1 ]; then
		case $(tail -n 1 "$conf") in
		*"$MARKER") trail=0 ;;
		esac
	fi
	TMPFILE=$(mktemp "${TMPDIR:-/tmp}/metawsm-conf.XXXXXX")
	MW_MARK=$MARKER MW_TRAIL=$trail awk '
		BEGIN { m = ENVIRON["MW_MARK"]; trail = ENVIRON["MW_TRAIL"] + 0; n = 0 }
		length($0) >= length(m) && substr($0, length($0) - length(m) + 1) == m { next }
		{ if (n++) printf "\n"; printf "%s", $0 }
		END { if (n && trail) printf "\n" }' "$conf" >"$TMPFILE"
	replace_contents "$conf"
}

has_marked_line() {
	[ -f "$1" ] && grep -qF -- "$MARKER" "$1"
}
marked_line() {
	grep -F -- "$MARKER" "$1" | head -n 1
}


# ---------------------------------------------------------------- completions and man page
abs_or() { case ${1:-} in /*) printf '%s' "$1" ;; *) printf '%s' "$2" ;; esac; }
DATA_HOME=$(abs_or "${XDG_DATA_HOME:-}" "$HOME/.local/share")
CONFIG_HOME=$(abs_or "${XDG_CONFIG_HOME:-}" "$HOME/.config")
# Where each shell looks on its own (zsh: a directory to add to $fpath), and man's.
GENERATED="$DATA_HOME/bash-completion/completions/metawsm-tick|completions bash
$DATA_HOME/zsh/site-functions/_metawsm-tick|completions zsh
$CONFIG_HOME/fish/completions/metawsm-tick.fish|completions fish
$DATA_HOME/man/man1/metawsm-tick.1|man"

# $1 = destination, $2 = the binary's arguments that print it. Rewritten only when it
# changed, so a second install writes nothing.
install_generated() {
	local dest=$1 tmp
	mkdir -p "${dest%/*}" 2>/dev/null || {
		say "note: cannot create ${dest%/*}; skipped $dest"
		return 0
	}
	tmp="${dest%/*}/.metawsm-tick.install.$$"
	# shellcheck disable=SC2086 # $2 is our own word list
	if ! with_timeout 10 "$DEST" $2 >"$tmp" 2>/dev/null </dev/null; then
		rm -f "$tmp"
		say "note: could not generate $dest"
		return 0
	fi
	if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
		rm -f "$tmp"
		say "up to date: $dest"
	else
		chmod 644 "$tmp"
		mv -f "$tmp" "$dest"
		say "installed: $dest"
	fi
}

# ---------------------------------------------------------------- uninstall
uninstall() {
	load_record
	local b list removed=0 conf
	list="$rec_bins$DEST
"
	while IFS= read -r b; do
		[ -n "$b" ] || continue
		if [ ! -e "$b" ] && [ ! -L "$b" ]; then continue; fi
		if record_has_bin "$b" ||
			with_timeout 5 "$b" --version 2>/dev/null </dev/null | grep -q '^metawsm-tick'; then
			rm -f "$b"
			say "removed binary: $b"
			removed=1
		else
			say "left alone: $b (does not report itself as metawsm-tick)"
		fi
	done <<EOF
$(printf '%s' "$list" | awk 'NF && !seen[$0]++')
EOF

	local gen_dest gen_args
	while IFS='|' read -r gen_dest gen_args; do
		if [ -f "$gen_dest" ] && grep -qi 'metawsm' "$gen_dest" 2>/dev/null; then
			rm -f "$gen_dest"
			say "removed $gen_dest"
		fi
	done <<EOF
$GENERATED
EOF

	if [ -n "$rec_conf" ]; then conf=$rec_conf; else conf=$(find_conf); fi
	if has_marked_line "$conf"; then
		local drop_nl=0
		if [ "$conf" = "$rec_conf" ]; then drop_nl=$rec_conf_added_newline; fi
		conf_remove "$conf" "$drop_nl"
		if [ "$conf" = "$rec_conf" ] && [ "$rec_conf_created" = 1 ] && [ ! -s "$conf" ]; then
			rm -f "$conf"
			say "removed $conf (install.sh had created it)"
		else
			say "removed the metawsm-tick line from $conf"
		fi
		removed=1
	fi

	if [ -f "$BACKUP" ]; then
		if [ -f "$conf" ] && cmp -s "$BACKUP" "$conf"; then
			rm -f "$BACKUP"
		else
			say "note: kept the pre-install copy of your tmux config: $BACKUP"
		fi
	fi
	rm -f "$RECORD"

	if [ "$removed" = 0 ]; then
		say "nothing to uninstall: no metawsm-tick binary in $BIN_DIR and no marked line in $conf"
	else
		say ""
		say "A running tmux server still has the plugin's hooks and status segment. Restart"
		say "tmux, or remove them by hand:"
		local cmd="$TMUX_WORDS" sep="" h
		for h in $HOOK_NAMES; do
			cmd="$cmd$sep set-hook -gu '${h}[91]'"
			sep=' \;'
		done
		say "    $cmd"
		if [ -f "$conf" ]; then
			say "and restore status-left/status-right (e.g. $TMUX_WORDS source-file $conf)."
		else
			say "and restore status-left/status-right (restart tmux: $conf no longer exists)."
		fi
	fi
	say "Never deleted by install.sh: the state directory $STATE_DIR and the database"
	say "(or wherever METAWSM_DB / @metawsm-db point). Remove them yourself if unwanted."
	if [ -n "$rec_bins" ] || [ "$removed" = 1 ]; then
		say "The Codex notify / Claude Code hook settings, if you added them, stay in your"
		say "agent configs; remove them by hand (they do nothing once the binary is gone)."
	fi
}

if [ "$do_uninstall" = 1 ]; then
	uninstall
	exit 0
fi

# ---------------------------------------------------------------- build
if [ -n "${METAWSM_INSTALL_BINARY:-}" ]; then
	SRC=$(from_orig "$METAWSM_INSTALL_BINARY")
	no_build=1
elif [ "$no_build" = 1 ]; then
	SRC=$("$REPO/build-release.sh" --no-build)
	say "Not building (--no-build): $SRC"
else
	command -v cargo >/dev/null 2>&1 ||
		die "cargo not found: install Rust (https://rustup.rs), or use --no-build with an existing build"
	# The build's flags live in build-release.sh, which the bench runs too.
	say "Building with build-release.sh (release; statically linked on Linux with glibc)"
	SRC=$("$REPO/build-release.sh") || die "the build failed"
fi
if [ ! -f "$SRC" ] || [ ! -x "$SRC" ]; then
	if [ "$no_build" = 1 ] && [ -z "${METAWSM_INSTALL_BINARY:-}" ]; then
		die "no binary at $SRC; run without --no-build (or cargo build --release) first"
	fi
	die "no executable binary at $SRC"
fi
if ! version=$(with_timeout 10 "$SRC" --version 2>/dev/null </dev/null); then
	die "$SRC does not run ($SRC --version failed)"
fi
case $version in
metawsm-tick*) ;;
*) die "$SRC is not metawsm-tick (--version printed: $version)" ;;
esac

# ---------------------------------------------------------------- install the binary
load_record
mkdir -p "$BIN_DIR" 2>/dev/null || die "cannot create $BIN_DIR (use --prefix DIR, or run with the needed permissions)"
[ -w "$BIN_DIR" ] || die "cannot write to $BIN_DIR (use --prefix DIR, or run with the needed permissions)"
if [ -f "$DEST" ] && cmp -s "$SRC" "$DEST"; then
	if [ ! -x "$DEST" ]; then chmod 755 "$DEST"; fi
	say "binary up to date: $DEST ($version)"
else
	TMPFILE="$BIN_DIR/.metawsm-tick.install.$$"
	cp "$SRC" "$TMPFILE"
	chmod 755 "$TMPFILE"
	mv -f "$TMPFILE" "$DEST" # atomic: a running binary keeps its old inode
	TMPFILE=""
	say "installed: $DEST ($version)"
fi
if ! record_has_bin "$DEST"; then
	rec_bins="$rec_bins$DEST
"
fi
write_record

# ---------------------------------------------------------------- tmux.conf
conf_active=0 # 1: the config loads the plugin through our marked line
RUN_CMD=""
if [ "$no_tmux_conf" = 1 ]; then
	say "tmux config: left alone (--no-tmux-conf)"
else
	entry_word=$(sh_word "$ENTRY") ||
		die "the repository path cannot be used in a tmux config line: $REPO (move it to a plain path)"
	RUN_CMD=$entry_word
	if [ "$BIN_DIR" != "$DEFAULT_BIN_DIR" ]; then
		# The entry file would not look in a custom bin dir by itself.
		bin_word=$(sh_word "$DEST") ||
			die "the install path cannot be used in a tmux config line: $DEST (use another --prefix)"
		RUN_CMD="METAWSM_BIN=$bin_word $entry_word"
	fi
	LINE="run-shell '$RUN_CMD' $MARKER"
	CONF=$(find_conf)
	if has_marked_line "$CONF"; then
		if [ "$(marked_line "$CONF")" = "$LINE" ]; then
			say "tmux config: already loads metawsm-tick ($CONF)"
		else
			conf_update "$CONF" "$LINE"
			say "tmux config: updated the metawsm-tick line in $CONF"
		fi
		conf_active=1
	elif [ -f "$CONF" ] && grep -Eq '^[^#]*(metawsm\.tmux|metawsm\.conf|@plugin.*metawsm)' "$CONF"; then
		say "tmux config: $CONF already loads metawsm another way; not adding a line"
	else
		answer=y
		if [ "$assume_yes" = 0 ] && [ -t 0 ]; then
			printf 'Add this line to %s?\n    %s\n[y/N] ' "$CONF" "$LINE" >&2
			read -r answer || answer=""
		fi
		case $answer in
		y | Y | yes | Yes | YES)
			created=0
			if [ ! -e "$CONF" ]; then
				mkdir -p "$(dirname "$CONF")"
				: >"$CONF"
				created=1
			else
				make_state_dir
				cp "$CONF" "$BACKUP"
			fi
			at=$(tpm_line_number "$CONF")
			at=${at:-0}
			added_nl=0
			if [ "$at" = 0 ] && lacks_final_newline "$CONF"; then added_nl=1; fi
			conf_insert "$CONF" "$LINE" "$at"
			rec_conf=$CONF
			rec_conf_created=$created
			rec_conf_added_newline=$added_nl
			write_record
			if [ "$at" = 0 ]; then
				say "tmux config: added the metawsm-tick line at the end of $CONF"
			else
				say "tmux config: added the metawsm-tick line to $CONF, before TPM (line $at)"
			fi
			conf_active=1
			;;
		*)
			say "tmux config: not changed. To load the plugin, add to $CONF:"
			say "    $LINE"
			;;
		esac
	fi
fi

# ---------------------------------------------------------------- running tmux server
if tmux_running; then
	if [ "$conf_active" = 1 ]; then
		if with_timeout 15 tmux ${TMUX_SOCKET:+-S "$TMUX_SOCKET"} run-shell "$RUN_CMD" >/dev/null 2>&1; then
			say "tmux: loaded the plugin into the running $SERVER_NAME"
		else
			say "tmux: could not load the plugin into the running $SERVER_NAME; run: $TMUX_WORDS run-shell '$RUN_CMD'"
		fi
	else
		say "tmux: a $SERVER_NAME is running; load the plugin with: $TMUX_WORDS run-shell '$ENTRY'"
	fi
else
	say "tmux: no $SERVER_NAME running; the plugin loads the next time tmux starts"
fi

# ---------------------------------------------------------------- completions, man page
while IFS='|' read -r gen_dest gen_args; do
	install_generated "$gen_dest" "$gen_args"
done <<EOF
$GENERATED
EOF
say "zsh: add $DATA_HOME/zsh/site-functions to fpath before compinit (bash, fish and man find theirs)."

# ---------------------------------------------------------------- doctor
say ""
say "$DEST doctor:"
if doctor_out=$(with_timeout 20 "$DEST" doctor 2>&1 </dev/null); then
	[ -z "$doctor_out" ] || printf '%s\n' "$doctor_out"
else
	[ -z "$doctor_out" ] || printf '%s\n' "$doctor_out"
	say "note: some checks failed (normal when no tmux server is running yet); the install itself succeeded."
fi

# ---------------------------------------------------------------- summary
say ""
say "metawsm-tick is installed at $DEST"
case ":${PATH:-}:" in
*":$BIN_DIR:"* | *":$BIN_DIR/:"*) say "$BIN_DIR is on your PATH." ;;
*)
	say "note: $BIN_DIR is not on your PATH. Add it, e.g. to ~/.profile:"
	say "    export PATH=\"$BIN_DIR:\$PATH\""
	;;
esac
say "Agent hooks (optional): see hooks/codex-notify and hooks/claude-hooks.json."
if mode_line=$(with_timeout 5 "$DEST" policy mode 2>&1 </dev/null); then
	say "$mode_line"
fi
