#!/usr/bin/python3
"""pty_run.py: run a command with a pseudo-terminal as its controlling terminal.

Used by the end-to-end tests to drive latch the way a human at a terminal
would: /dev/tty works in the child, no-echo prompts can be answered, and
everything the child writes to the terminal is captured byte for byte.
Standard library only; run it as /usr/bin/python3.

usage: pty_run.py [--raw] [--timeout SEC] [--log FILE]
                  [--answer PROMPT LINE]... [--answers-file FILE]
                  [--stdin PATH] [--stdout PATH] [--stderr PATH]
                  -- CMD [ARG...]

  --raw               put the terminal in raw mode (cfmakeraw) before the
                      command starts, so output bytes pass unchanged (no
                      \\n -> \\r\\n, no echo of typed input)
  --timeout SEC       kill the command's process group after SEC seconds
                      (default 30); exit status 124
  --log FILE          write every byte the command sends to the terminal
                      to FILE
  --answer PROMPT LINE
                      when PROMPT appears on the terminal, type LINE and a
                      newline; answers are given in order, each prompt is
                      looked for after the previous one
  --answers-file FILE the same, from FILE: one "PROMPT<TAB>LINE" per line
                      (keeps the typed lines out of this process's argv)
  --stdin/--stdout/--stderr PATH
                      connect that stream of the command to PATH instead of
                      the terminal ('-' keeps this process's own stream)

The command runs in a new session whose controlling terminal is the pty.
File descriptors this process inherited (say fd 3) pass to the command.
When the command exits, the terminal output left is read to the end and
anything still running in its process group is killed; on timeout the
whole process group is killed.
Exit status: the command's, 128+N if it died of signal N, 124 on timeout,
125 if this helper failed, 127 if the command could not be started.
"""

import errno
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time
import tty


def fail(msg, status=125):
    sys.stderr.write("pty_run: %s\n" % msg)
    sys.exit(status)


def parse_args(argv):
    opts = {
        "raw": False,
        "timeout": 30.0,
        "log": None,
        "answers": [],
        "stdin": None,
        "stdout": None,
        "stderr": None,
    }
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if a == "--raw":
            opts["raw"] = True
            i += 1
        elif a in ("--timeout", "--log", "--stdin", "--stdout", "--stderr", "--answers-file"):
            if i + 1 >= len(argv):
                fail("option %s needs a value" % a, 2)
            v = argv[i + 1]
            if a == "--timeout":
                try:
                    opts["timeout"] = float(v)
                except ValueError:
                    fail("bad --timeout %r" % v, 2)
            elif a == "--answers-file":
                with open(v, "rb") as f:
                    for line in f.read().split(b"\n"):
                        if not line:
                            continue
                        if b"\t" not in line:
                            fail("answers file line without a tab", 2)
                        p, l = line.split(b"\t", 1)
                        opts["answers"].append((p, l))
            else:
                opts[a[2:]] = v
            i += 2
        elif a == "--answer":
            if i + 2 >= len(argv):
                fail("--answer needs PROMPT and LINE", 2)
            opts["answers"].append((os.fsencode(argv[i + 1]), os.fsencode(argv[i + 2])))
            i += 3
        elif a.startswith("-"):
            fail("unknown option %s" % a, 2)
        else:
            break
    cmd = argv[i:]
    if not cmd:
        fail("no command given", 2)
    return opts, cmd


def open_redirect(path, write):
    if path is None or path == "-":
        return None
    flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else os.O_RDONLY
    try:
        return os.open(path, flags, 0o600)
    except OSError as e:
        fail("cannot open %s: %s" % (path, e.strerror))


def child(cmd, slave, master, redirects):
    """In the forked child: new session, the pty as controlling terminal."""
    try:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for target, (path, fd) in enumerate(redirects):
            if path == "-":
                continue  # keep the inherited stream
            os.dup2(fd if fd is not None else slave, target)
        if slave > 2:
            os.close(slave)
        for _, fd in redirects:
            if fd is not None and fd > 2:
                os.close(fd)
        # Python ignores these; an exec'd program must not inherit that.
        for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT):
            signal.signal(s, signal.SIG_DFL)
        os.execvp(cmd[0], cmd)
    except OSError as e:
        try:
            os.write(2, ("pty_run: cannot run %s: %s\n" % (cmd[0], e.strerror)).encode())
        except OSError:
            pass
        os._exit(127 if e.errno == errno.ENOENT else 126)
    os._exit(127)


def exit_status(ws):
    if os.WIFEXITED(ws):
        return os.WEXITSTATUS(ws)
    if os.WIFSIGNALED(ws):
        return 128 + os.WTERMSIG(ws)
    return 125


def main():
    opts, cmd = parse_args(sys.argv[1:])
    redirects = [
        (opts["stdin"], open_redirect(opts["stdin"], False)),
        (opts["stdout"], open_redirect(opts["stdout"], True)),
        (opts["stderr"], open_redirect(opts["stderr"], True)),
    ]
    log = open(opts["log"], "wb") if opts["log"] else None

    # SIGCHLD wakes the select() below at once when the command exits.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    if opts["raw"]:
        tty.setraw(slave, termios.TCSANOW)

    pid = os.fork()
    if pid == 0:
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
        child(cmd, slave, master, redirects)
    # Keep a slave fd open while the child runs: if the child's own stdio
    # all go elsewhere, its last slave fd closes before it opens /dev/tty,
    # and the master would read EIO ("hung up") too early. Once the child
    # has exited this fd is closed, and the master reads what is left, then
    # EIO.
    for _, fd in redirects:
        if fd is not None:
            os.close(fd)

    deadline = time.monotonic() + opts["timeout"]
    answers = list(opts["answers"])
    seen = bytearray()  # terminal output not yet matched against a prompt
    status = None  # the child's wait status once reaped
    idle_since = None
    timed_out = False

    while True:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if status is None:
            p, ws = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                status = ws
        if status is not None and slave >= 0:
            os.close(slave)
            slave = -1
        try:
            r, _, _ = select.select([master, wake_r], [], [], min(0.5, deadline - now))
        except InterruptedError:
            continue
        if wake_r in r:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
            r.remove(wake_r)
            if status is None:
                continue  # reap it at the top of the loop
        if not r:
            # The child is gone but something else holds the terminal
            # open: stop once nothing more arrives for a while.
            if status is not None:
                if idle_since is None:
                    idle_since = now
                elif now - idle_since > 0.5:
                    break
            continue
        idle_since = None
        try:
            data = os.read(master, 65536)
        except OSError as e:
            if e.errno == errno.EIO:  # every slave fd closed: the end
                break
            raise
        if not data:
            break
        if log:
            log.write(data)
            log.flush()
        seen += data
        while answers:
            prompt, line = answers[0]
            at = seen.find(prompt)
            if at < 0:
                # Keep only what could still be the start of the prompt.
                if len(seen) > len(prompt):
                    del seen[: len(seen) - len(prompt)]
                break
            del seen[: at + len(prompt)]
            answers.pop(0)
            os.write(master, line + b"\n")

    if slave >= 0:
        os.close(slave)
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status is None:
            _, status = os.waitpid(pid, 0)
        sys.stderr.write("pty_run: timeout after %g s: killed %s\n" % (opts["timeout"], cmd[0]))
        if log:
            log.close()
        sys.exit(124)

    if status is None:
        # The terminal closed; wait for the child within the deadline.
        while True:
            p, ws = os.waitpid(pid, os.WNOHANG)
            if p == pid:
                status = ws
                break
            if time.monotonic() >= deadline:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
                sys.stderr.write("pty_run: timeout after %g s: killed %s\n" % (opts["timeout"], cmd[0]))
                sys.exit(124)
            time.sleep(0.01)
    os.close(master)
    if log:
        log.close()
    # Leave nothing behind: whatever the command started in its process
    # group (the group outlives the reaped leader only through them).
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if answers:
        sys.stderr.write(
            "pty_run: %d prompt(s) never appeared, first %r\n" % (len(answers), answers[0][0].decode(errors="replace"))
        )
    sys.exit(exit_status(status))


if __name__ == "__main__":
    main()
