#!/usr/bin/env bash
# Install Julia 1.5.3 from Debian 11's archive when no Julia is found, leaving the machine's own
# apt sources untouched: a private apt state and source list are used for this one install.
# Julia's own binaries and registry are out of reach on these machines (docs/julia.md).
set -euo pipefail
if [ -n "${SPARSEJL_JULIA:-}" ] && [ -x "$SPARSEJL_JULIA" ]; then
  echo "install-julia: using SPARSEJL_JULIA=$SPARSEJL_JULIA"; exit 0
fi
if command -v julia >/dev/null 2>&1; then
  echo "install-julia: found $(command -v julia) ($(julia --version))"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-julia: no julia found and not root; install Julia (https://julialang.org/downloads)" \
       "or set SPARSEJL_JULIA to a julia executable" >&2
  exit 1
fi
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || { echo "install-julia: no Debian mirror in the apt sources" >&2; exit 1; }
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
mkdir -p "$state/lists/partial" "$state/parts"; chmod -R 755 "$state"
cat > "$state/parts/julia.sources" <<SRC
Types: deb
URIs: $uri
Suites: bookworm bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
o=(-o "Dir::State::Lists=$state/lists" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$state/parts")
apt-get "${o[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${o[@]}" install -y -qq --no-install-recommends julia >/dev/null
echo "install-julia: installed $(julia --version)"
