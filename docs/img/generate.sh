#!/usr/bin/env bash
# Regenerates docs/img/bar.svg and docs/img/menu.svg: a real tmux client attached to an isolated tmux server
# with the plugin loaded and four demo runs (working, asking, dead, done), captured with
# its colours (capture-pane -e) and rendered by `metawsm-tick __svg`. Nothing shown
# depends on the clock. tests/doc_pictures.rs checks the committed file is current.
# Usage: docs/img/generate.sh [OUT_DIR] (default: docs/img) — needs tmux and a built binary
# (METAWSM_BIN, else target/debug/metawsm-tick).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/docs/img}
bin=${METAWSM_BIN:-$root/target/debug/metawsm-tick}
work=$(mktemp -d)
inner=$work/inner
outer=$work/outer
cleanup() {
	tmux -S "$outer" kill-server 2>/dev/null || true
	tmux -S "$inner" kill-server 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
unset TMUX TMUX_PANE METAWSM_POLICY
export HOME=$work/home METAWSM_DB=$work/state.db METAWSM_TMUX_SOCKET=$inner
mkdir -p "$HOME"
# Nothing is restarted or asked of an LLM while the picture is taken.
cat >"$work/policy.json" <<'JSON'
{"operator": {"unhealthy_confirmations": 1000, "llm": {"mode": "off"}, "notify": {"tmux_message": false}}}
JSON
export METAWSM_POLICY=$work/policy.json

tmux -S "$inner" -f /dev/null new-session -d -s demo -n editor -x 78 -y 15 \
	"printf 'the bar: ⚙ working  ? asks you  ✖ dead or blocked  ✔ done\n'; exec sleep 100000"
tmux -S "$inner" set -g status-style 'bg=#303030,fg=#d0d0d0' \; \
	set -g status-left ' demo ' \; set -g status-interval 1 \; \
	set -g status-right ' #{metawsm_status} ' \; set -g automatic-rename off
"$bin" tmux-setup --bin "$bin"

start() { # id, agent command
	mkdir -p "$work/ws/$1/ttmp/${1^^}"
	"$bin" run start --ticket "${1^^}" --workspace "$work/ws/$1" --id "$1" --session "$1" -- sh -c "$2" >/dev/null
}
start mw-1 'exec sleep 100000'
start mw-2 'mkdir -p .metawsm; printf "{\"question\":\"Which database?\"}" > .metawsm/guidance-request.json; exec sleep 100000'
start mw-3 'exit 1'
start mw-4 'exec sleep 100000'
"$bin" signal --run mw-4 --agent agent done >/dev/null
for _ in $(seq 100); do
	"$bin" tick >/dev/null
	[ "$("$bin" status --no-tick --format plain)" = "⚙1 ?1 ✖1 ✔1" ] && break
	sleep 0.1
done

# A client of the inner server, inside a pane of the outer one, shows the real bar.
tmux -S "$outer" -f /dev/null new-session -d -x 78 -y 16 \
	"TERM=screen-256color TMUX= exec tmux -S '$inner' attach -t demo"
for _ in $(seq 100); do
	screen=$(tmux -S "$outer" capture-pane -p)
	case $screen in *"✔1"*) break ;; esac
	sleep 0.1
done
# The bar: the client's last row.
tmux -S "$outer" capture-pane -e -p -S 15 -E 15 | "$bin" __svg >"$out/bar.svg"
echo "wrote $out/bar.svg"
# The menu (prefix + M) of the runs that need you, opened on that client.
client=$(tmux -S "$inner" list-clients -F '#{client_name}' | head -1)
# display-menu waits until the menu closes: leave it open in the background.
"$bin" menu --client "$client" &
for _ in $(seq 100); do
	screen=$(tmux -S "$outer" capture-pane -p)
	case $screen in *mw-3*) break ;; esac
	sleep 0.1
done
sleep 0.3
tmux -S "$outer" capture-pane -e -p | "$bin" __svg >"$out/menu.svg"
echo "wrote $out/menu.svg"
