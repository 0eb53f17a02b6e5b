#!/usr/bin/python3
"""pty_shell.py: drive an interactive shell on a pseudo-terminal, step by step.

Job control (Ctrl-Z, fg, bg) needs a shell: the kernel discards SIGTSTP,
SIGTTIN and SIGTTOU sent to an orphaned process group, so a command that
pty_run.py starts directly can never be stopped. This runs
`bash --norc --noprofile -i` as the leader of a new session whose
controlling terminal is the pty, and follows a script of steps.
Standard library only; run it as /usr/bin/python3.

usage: pty_shell.py [--timeout SEC] --log FILE --steps FILE [--sid-file FILE]
       pty_shell.py --kill-session SID

  --timeout SEC    give up after SEC seconds in all (default 60); exit 124
  --log FILE       every byte written to the terminal
  --steps FILE     one step a line, a tab between the verb and its argument:
                     expect REGEX    wait until REGEX (Python re, bytes)
                                     matches terminal output not yet
                                     consumed by an earlier expect; fail
                                     (exit 1) if it never does
                     expect? SEC REGEX  the same, but after SEC seconds go
                                     on to the next step without failing
                     send TEXT       type TEXT (backslash escapes decoded:
                                     \\n, \\x1a, \\\\)
                     sleep SEC       wait, reading output meanwhile
                     kill SIGNAME    send SIGNAME (STOP, CONT, ...) to the
                                     terminal's foreground process group,
                                     as another process would
                     resize ROWS COLS  set the terminal's window size (the
                                     kernel sends the foreground process
                                     group SIGWINCH)
                   the steps file keeps typed passphrases out of argv.
  --sid-file FILE  write the session id (the shell's pid) to FILE, so a
                   caller can clean up even if this process is killed
  --kill-session SID
                   SIGKILL every process of session SID and exit

After the last step (or a failure, or the timeout) every process of the
session is killed: the shell and every job it started, whatever their
process group. Exit status: 0 when every step ran, 1 when an expect
failed, 124 on timeout, 125 if this helper failed.
"""

import codecs
import errno
import fcntl
import os
import re
import select
import signal
import struct
import sys
import termios
import time


def fail(msg, status=125):
    sys.stderr.write("pty_shell: %s\n" % msg)
    sys.exit(status)


def session_members(sid):
    """PIDs of every live process whose session id is sid (from /proc);
    zombies are left out: they are dead already, their parent reaps them."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold anything.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != b"Z":
            pids.append(int(d))
    return pids


def kill_session(sid):
    """SIGKILL the whole session, stopped jobs included, until it is empty."""
    if sid <= 1:
        return
    for _ in range(100):
        pids = session_members(sid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def parse_steps(path):
    steps = []
    with open(path, "rb") as f:
        for n, line in enumerate(f.read().split(b"\n"), 1):
            if not line:
                continue
            verb, _, arg = line.partition(b"\t")
            verb = verb.decode()
            if verb == "expect":
                steps.append(("expect", None, re.compile(arg)))
            elif verb == "expect?":
                sec, _, rx = arg.partition(b" ")
                steps.append(("expect", float(sec), re.compile(rx)))
            elif verb == "send":
                steps.append(("send", codecs.escape_decode(arg)[0]))
            elif verb == "sleep":
                steps.append(("sleep", float(arg)))
            elif verb == "kill":
                steps.append(("kill", getattr(signal, "SIG" + arg.decode())))
            elif verb == "resize":
                rows, _, cols = arg.partition(b" ")
                steps.append(("resize", int(rows), int(cols)))
            else:
                fail("steps line %d: unknown verb %r" % (n, verb), 2)
    return steps


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--kill-session":
        kill_session(int(args[1]))
        return 0
    opts = {"--timeout": "60", "--log": None, "--steps": None, "--sid-file": None}
    while args:
        if args[0] not in opts or len(args) < 2:
            fail("usage: see the top of %s" % sys.argv[0], 2)
        opts[args[0]] = args[1]
        args = args[2:]
    if not opts["--log"] or not opts["--steps"]:
        fail("--log and --steps are required", 2)
    steps = parse_steps(opts["--steps"])
    deadline = time.monotonic() + float(opts["--timeout"])
    log = open(opts["--log"], "wb")

    master, slave = os.openpty()
    # Wide enough that no command line the steps type wraps.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))
    pid = os.fork()
    if pid == 0:
        try:
            os.close(master)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            if slave > 2:
                os.close(slave)
            # Python ignores these; the shell and its jobs must not inherit that.
            for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT):
                signal.signal(s, signal.SIG_DFL)
            env = dict(os.environ, PS1="sh> ", HISTFILE="/dev/null", TERM="dumb")
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        except OSError as e:
            os.write(2, ("pty_shell: cannot run bash: %s\n" % e.strerror).encode())
        os._exit(127)
    os.close(slave)
    # Killed by SIGTERM, SIGHUP or SIGINT, this still runs the clean-up in
    # the finally below; the sid file covers SIGKILL.
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, lambda sig, _: sys.exit(128 + sig))
    if opts["--sid-file"]:
        with open(opts["--sid-file"], "w") as f:
            f.write("%d\n" % pid)

    buf = bytearray()  # output not yet consumed by an expect
    eof = False

    def pump(until):
        """Read terminal output into buf until the monotonic time until."""
        nonlocal eof
        while not eof:
            left = until - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([master], [], [], left)
            if not r:
                return
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:  # EIO: every slave fd closed
                    raise
                data = b""
            if not data:
                eof = True
                return
            log.write(data)
            log.flush()
            buf.extend(data)
            return

    status = 0
    try:
        for n, step in enumerate(steps, 1):
            if step[0] == "send":
                os.write(master, step[1])
            elif step[0] == "kill":
                os.killpg(os.tcgetpgrp(master), step[1])
            elif step[0] == "resize":
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", step[1], step[2], 0, 0))
            elif step[0] == "sleep":
                until = time.monotonic() + step[1]
                while time.monotonic() < until and time.monotonic() < deadline and not eof:
                    pump(min(until, deadline))
            else:
                _, soft, rx = step
                until = deadline if soft is None else min(deadline, time.monotonic() + soft)
                while True:
                    m = rx.search(buf)
                    if m:
                        del buf[: m.end()]
                        break
                    if time.monotonic() >= until or eof:
                        break
                    pump(until)
                if m:
                    continue
                if soft is not None and time.monotonic() < deadline and not eof:
                    sys.stderr.write("pty_shell: step %d: %r did not appear in %g s, going on\n"
                                     % (n, rx.pattern, soft))
                    continue
                why = "the terminal closed" if eof else "timeout"
                sys.stderr.write("pty_shell: step %d: %r never appeared (%s)\n" % (n, rx.pattern, why))
                status = 124 if why == "timeout" and time.monotonic() >= deadline else 1
                break
    finally:
        kill_session(pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        # Drain what the dying session left, for the log.
        while True:
            r, _, _ = select.select([master], [], [], 0)
            if not r:
                break
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            log.write(data)
        log.close()
        os.close(master)
    return status


if __name__ == "__main__":
    sys.exit(main())
