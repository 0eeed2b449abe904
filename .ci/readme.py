#!/usr/bin/env python3
"""Runs every shell command of README.md, so the README cannot go stale.

Each ```sh block is read line by line (a trailing backslash joins lines). A command runs in one
bash session, so exports and background jobs carry over; it must exit 0, or the code its comment
names (`# exit 1: …`). After a command sent to the background, the script waits for the port it
serves. `cargo` lines (the quick start) are left to .ci/run itself. `cabgate` is the binary in
target/debug (CABGATE_BIN overrides).
"""
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commands(readme):
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        pending = ""
        for line in block.splitlines():
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            if line.strip() and not line.lstrip().startswith(("#", "cargo ")):
                yield line


def expected_exit(line):
    found = re.search(r"#\s*exit (\d+)", line)
    return int(found.group(1)) if found else 0


def script(lines):
    out = ["set -u", "wait_port() { for _ in $(seq 1 300); do"
           " (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.2; done;"
           " echo \"port $1 never opened\"; exit 1; }"]
    for line in lines:
        command = line.split(" #", 1)[0].rstrip() if " #" in line else line
        out.append(f"echo {shlex.quote('$ ' + command)}")
        if command.endswith("&"):
            out.append(command)
            port = re.search(r"(?:port |127\.0\.0\.1:)(\d{4,5})", command)
            if port:
                out.append(f"wait_port {port.group(1)}")
            continue
        want = expected_exit(line)
        out.append(f"{command}\nrc=$?")
        out.append(f"if [ $rc -ne {want} ]; then echo \"README command exited $rc, expected "
                   f"{want}: \"{shlex.quote(command)}; kill $(jobs -p) 2>/dev/null; exit 1; fi")
    out.append("wait %2 2>/dev/null; rc=$?")
    out.append("kill %1 2>/dev/null; wait 2>/dev/null")
    out.append("echo 'README: every command ran as documented'")
    return "\n".join(out) + "\n"


def main():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    binary = os.environ.get("CABGATE_BIN", os.path.join(ROOT, "target", "debug", "cabgate"))
    bindir = os.path.join(ROOT, "target", "readme-bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "cabgate")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.abspath(binary), link)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    work = os.path.join(ROOT, "target", "readme-run")
    os.makedirs(work, exist_ok=True)
    for name in ("fixtures", "schemas", "policies", "workflows"):
        target = os.path.join(work, name)
        if not os.path.lexists(target):
            os.symlink(os.path.join(ROOT, name), target)
    result = subprocess.run(["bash", "-c", script(list(commands(readme)))], cwd=work, env=env,
                            timeout=600)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
