#!/usr/bin/env bash
# Install Julia 1.5.3 from Debian 11's archive when no Julia is found, leaving the machine's own
# apt sources untouched: a private apt state and source list serve this one install.
# Julia's own binaries and registry are out of reach on these machines (docs/julia.md).
#
# Debian's julia 1.5.3 was built against libunwind 1.3; with Debian 12's libunwind 1.6 it crashes
# on the first exception thrown in compiled code. Where that happens, libunwind 1.3.2 from the same
# archive is put in Julia's private library folder, which libjulia searches first ($ORIGIN/julia).
set -euo pipefail

julia_bin() {
  if [ -n "${SPARSEJL_JULIA:-}" ]; then echo "$SPARSEJL_JULIA"; else command -v julia || true; fi
}

throws_safely() {  # does a caught exception in a compiled function leave Julia alive?
  "$1" --startup-file=no -e 'f() = try; error("probe"); catch; 0; end; exit(f())' >/dev/null 2>&1
}

state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
apt_private() {
  local uri
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { echo "install-julia: no Debian mirror in the apt sources" >&2; exit 1; }
  if [ ! -d "$state/lists" ]; then
    mkdir -p "$state/lists/partial" "$state/parts"
    chmod -R 755 "$state"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bullseye\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" > "$state/parts/julia.sources"
    apt-get -o "Dir::State::Lists=$state/lists" -o "Dir::Etc::SourceList=/dev/null" \
      -o "Dir::Etc::SourceParts=$state/parts" update -qq 2>/dev/null
  fi
  apt-get -o "Dir::State::Lists=$state/lists" -o "Dir::Etc::SourceList=/dev/null" \
    -o "Dir::Etc::SourceParts=$state/parts" "$@"
}

julia=$(julia_bin)
if [ -z "$julia" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-julia: no julia found and not root; install Julia >= 1.5 (https://julialang.org/downloads)" \
         "or set SPARSEJL_JULIA to a julia executable" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt_private install -y -qq --no-install-recommends julia >/dev/null
  julia=$(command -v julia)
  echo "install-julia: installed $("$julia" --version)"
else
  echo "install-julia: found $julia ($("$julia" --version))"
fi

if ! throws_safely "$julia"; then
  libjulia=$("$julia" --startup-file=no -e 'import Libdl; print(first(filter(p -> occursin(r"^libjulia\.so", basename(p)), Libdl.dllist())))')
  private=$(dirname "$(readlink -f "$libjulia")")/julia
  echo "install-julia: $julia crashes on exceptions (libunwind mismatch); adding libunwind 1.3.2 to $private"
  (cd "$state" && apt_private download -qq libunwind8=1.3.2-2 2>/dev/null && dpkg -x libunwind8_*.deb unwind)
  cp -a "$state"/unwind/usr/lib/x86_64-linux-gnu/libunwind.so.8* \
        "$state"/unwind/usr/lib/x86_64-linux-gnu/libunwind-x86_64.so.8* "$private/"
  throws_safely "$julia" || { echo "install-julia: $julia still crashes on exceptions" >&2; exit 1; }
fi
echo "install-julia: $julia handles exceptions"
