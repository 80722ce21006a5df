#!/usr/bin/env bash
# One-time (and idempotent) set-up of everything the project needs on this machine:
#   uv -> locked Python venv (.venv) -> Java check -> JVM jars from Maven Central (var/cache/jars)
#   -> the project's JVM classes -> class-data archives of the Spark and Kafka JVMs (var/cache/jars/cds).
# Browser tests additionally need Debian's chromium + chromium-driver: scripts/setup.sh --browser.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '==> %s\n' "$*"; }
fail() { printf 'setup: %s\n' "$*" >&2; exit 1; }

step "Python environment (uv + uv.lock)"
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv || fail "could not install uv from PyPI"
  hash -r
fi
command -v uv >/dev/null 2>&1 || export PATH="$HOME/.local/bin:$PATH"
uv sync --frozen --quiet || fail "uv sync --frozen failed (is uv.lock in sync with pyproject.toml?)"
echo "  .venv ready ($(.venv/bin/python --version))"

step "Java (17 or newer)"
command -v java >/dev/null 2>&1 || fail "java not found: install OpenJDK 17+ (apt-get install openjdk-17-jdk-headless)"
java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F= '/java.specification.version/ {gsub(/ /,"",$2); print $2}')
[ "${java_major%%.*}" -ge 17 ] || fail "Java $java_major found, 17 or newer needed"
echo "  java $java_major"

step "Maven"
if ! command -v mvn >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "mvn not found: install Maven (apt-get install maven)"
  apt-get update -qq && apt-get install -y -qq maven >/dev/null || fail "could not install maven with apt-get"
fi
echo "  $(mvn -B -v 2>/dev/null | head -1)"

step "JVM jars (Delta Lake, Spark Kafka source, Apache Kafka broker)"
.venv/bin/python infra/fetch_jars.py

step "Project JVM classes (the speed layer's inventory processor)"
.venv/bin/python infra/build_jvm.py

step "Class-data archives (faster starts of Spark and Kafka JVMs; built once per JDK and pyspark)"
.venv/bin/python -m infra.jvm_archive

if [ "${1:-}" = "--browser" ]; then
  step "Chromium + chromedriver (browser tests)"
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    [ "$(id -u)" = 0 ] || fail "chromium missing: apt-get install chromium chromium-driver (needs root)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || fail "could not install chromium chromium-driver with apt-get"
  fi
  echo "  $(/usr/bin/chromium --version 2>/dev/null)"
fi

echo "==> setup done in $(( $(date +%s) - started ))s"
