#!/usr/bin/env python3
"""Drive an interactive npm command (`npm login --auth-type=legacy`,
`npm adduser --auth-type=legacy`) through a pseudo-terminal.

npm reads the password from a TTY, so piping stdin does not work. This script
runs the command on a pty, waits for each prompt and types the answer:

    npm_login_pty.py --username U --password P [--email E] [--timeout 30] -- npm login ...

Prompts answered: "Username:", "Password:", "Email...:" (npm 11 asks
"Email (this will be public):"). Each answer is typed
once, when its prompt appears. Everything npm printed is written to stdout,
and the script exits with npm's exit code (124 on timeout, 125 on a script
error). The environment (npm_config_* variables) is passed through to npm.
"""

import argparse
import errno
import os
import pty
import re
import select
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--email")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("npm_login_pty.py: no command given", file=sys.stderr)
        return 125

    answers = [
        (re.compile(rb"Username:"), args.username),
        (re.compile(rb"Password:"), args.password),
        (re.compile(rb"Email[^:\r\n]*:"), args.email),
    ]

    pid, fd = pty.fork()
    if pid == 0:
        # Child: the pty is our controlling terminal and stdio.
        os.environ.setdefault("TERM", "dumb")
        os.environ["NO_COLOR"] = "1"
        try:
            os.execvp(command[0], command)
        except OSError as e:
            os.write(2, f"exec {command[0]} failed: {e}\n".encode())
        os._exit(127)

    deadline = time.monotonic() + args.timeout
    output = bytearray()
    answered = set()
    # Where in the output to look for the next prompts: past the last prompt answered,
    # so an echoed or repeated line never triggers a second answer.
    search_from = 0
    timed_out = False
    problem = None

    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        try:
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        except InterruptedError:
            continue
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError as e:
                if e.errno == errno.EIO:  # the child closed the pty (exited)
                    break
                raise
            if not chunk:
                break
            output.extend(chunk)
            # Answer prompts in the order they appear in the output.
            while True:
                first = None
                for i, (pattern, answer) in enumerate(answers):
                    if i in answered:
                        continue
                    m = pattern.search(output, search_from)
                    if m and (first is None or m.start() < first[1].start()):
                        first = (i, m)
                if first is None:
                    break
                i, m = first
                answer = answers[i][1]
                if answer is None:
                    problem = f"npm asked for {m.group(0).decode()!r} but no answer was given"
                    break
                # Let npm finish setting up the line reader before typing.
                time.sleep(0.1)
                os.write(fd, answer.encode() + b"\r")
                answered.add(i)
                search_from = m.end()
            if problem:
                break
        else:
            # No output: has the child exited without closing the pty yet?
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                sys.stdout.write(output.decode(errors="replace"))
                sys.stdout.flush()
                return os.waitstatus_to_exitcode(status)

    if timed_out or problem:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        sys.stdout.write(output.decode(errors="replace"))
        if timed_out:
            print(f"\nnpm_login_pty.py: timed out after {args.timeout}s", flush=True)
            return 124
        print(f"\nnpm_login_pty.py: {problem}", flush=True)
        return 125

    # The pty is closed; reap the child (bounded by the same deadline).
    status = None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        else:
            time.sleep(0.05)
    sys.stdout.write(output.decode(errors="replace"))
    sys.stdout.flush()
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
