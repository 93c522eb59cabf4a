"""Issue 17's benchmark: every row of its table, against every peer installed, into RESULTS.md.

    sudo .venv/bin/python bench/run.py --runs 5            # the full run (about an hour)
    .venv/bin/python bench/run.py --tiny --runs 1          # tiny sizes: a smoke run

The harness re-executes itself in a network namespace of its own (`unshare --net`, named with
`ip netns attach` so dockerd can be started in it, and a mount namespace with that network's
/sys), so every engine's bridges, firewall rules
and registries live there and nothing of the host's networking is touched. Rows run group by
group; within a group the engines alternate run by run (the order rotates), so load that
comes and goes falls on all alike. Options: --only GROUPS (a,c,d,e,f,g,runs,cost,throughput,
list,stages), --engines (dockyard,docker,buildkit,podman,buildah), --out PATH, --note TEXT.
Not a test; tests/bench/test_smoke.py runs it with --tiny so the harness cannot rot.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import short_tmp
from tests.registry.support import Registry
from tests.support.daemons import unmount_all_under

from bench import engines as eng
from bench.floors import floors, write_blobs
from bench.memory import total
from bench.report import Results, write
from bench.rows import MEMORY_ROWS, Bench, groups
from bench.sampling import Samples, StepFailed, load_average
from bench.workloads import TINY, Sizes, make_contexts, pull_image

NETNS_ENV = "DYBENCH_NETNS"
RESULTS = Path(__file__).resolve().with_name("RESULTS.md")


# The namespace's own /sys (so /sys/class/net shows its interfaces, which dockyard reads), with
# the host's cgroup tree moved over from the old one (`ip netns exec` remounts /sys without it)
ENTER = (
    "set -e; d=/run/dybench-cg-$$; mkdir -p $d; mount --rbind /sys/fs/cgroup $d; "
    'mount -t sysfs sysfs /sys; mount --move $d /sys/fs/cgroup; rmdir $d; exec "$@"'
)


def enter_private_network(argv: list[str]) -> None:
    """Re-execute in new network and mount namespaces (a no-op once inside)."""
    if os.environ.get(NETNS_ENV):
        return
    env = dict(os.environ, **{NETNS_ENV: f"dybench-{os.getpid()}"})
    unshare = ["unshare", "--net", "--mount", "--propagation", "private", "--"]
    os.execvpe("unshare", [*unshare, "sh", "-c", ENTER, "sh", sys.executable, *argv], env)


def name_our_network() -> str:
    name = os.environ[NETNS_ENV]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "netns", "attach", name, str(os.getpid())], check=True)
    return name


# Row h's "after" is what a daemon holds once its work is over, not while it winds down:
# every daemon gets the same quiet before the reading. dockyard re-executes itself in place
# after 60 s idle (api/idle_reexec.py); Go's runtime returns dockerd's and containerd's free
# heap to the kernel in the background (its scavenger) over the same minutes.
SETTLE = 75.0


def memory_now(engine: eng.Engine) -> float:
    """The daemon's RSS (MiB, with its child daemons such as containerd) at this moment."""
    return total(engine.owned_pids()).rss_kib / 1024


def memory_sample(engine: eng.Engine, runs: int) -> float:
    """The median of `runs` readings of memory_now, half a second apart."""
    values = []
    for _ in range(max(1, runs)):
        values.append(memory_now(engine))
        time.sleep(0.5)
    return statistics.median(values)


def daemon_of(engine: eng.Engine, daemons: list[eng.Engine]) -> eng.Engine | None:
    """The daemon column whose process does `engine`'s work (BuildKit's is Docker legacy's
    dockerd); None for an engine with no daemon (Podman, Buildah)."""
    pids = set(engine.daemon_pids())
    return next((d for d in daemons if pids & set(d.daemon_pids())), None)


def short(why: str) -> str:
    lines = [line for line in why.splitlines() if line.strip()]
    return (lines[0] + (" … " + lines[-1] if len(lines) > 1 else ""))[:300]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="tiny sizes (the smoke test's)")
    p.add_argument("--only", default="", help="comma list of groups")
    p.add_argument("--engines", default="dockyard,docker,buildkit,podman,buildah")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--note", default="", help="a line under the title (e.g. the machine's state)")
    p.add_argument(
        "--settle",
        type=float,
        default=SETTLE,
        help=f"seconds of quiet every daemon gets before row h's after reading (default {SETTLE:g})",
    )
    args = p.parse_args()
    enter_private_network(sys.argv)
    netns = name_our_network()
    sizes = TINY if args.tiny else Sizes()
    keys = [k for k in args.engines.split(",") if k and eng.available(k)]
    chosen = [g for g in groups(sizes) if not args.only or g.key in args.only.split(",")]
    load_start = load_average()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    base = short_tmp("dybench-")
    pull_reg = push_reg = None
    engines: list[eng.Engine] = []
    try:
        print(f"[bench] preparing inputs in {base} (load {load_start})", flush=True)
        contexts = make_contexts(base / "inputs", sizes)
        image = pull_image(sizes)
        blobs = write_blobs(image, base / "blobs")
        pull_reg = Registry(base / "reg-pull").start()
        push_reg = Registry(base / "reg-push").start()
        pull_reg.put_image("bench/pull", "latest", image)
        bench = Bench(
            base, sizes, contexts, pull_reg, push_reg, f"{pull_reg.host}/bench/pull:latest"
        )
        engines = eng.start_engines(base / "engines", keys, netns)
        names = [e.name for e in engines]
        rows = [r for g in chosen for r in g.rows]
        daemons = [e for e in engines if eng.DAEMON in e.can]
        memory = not args.only or "h" in args.only.split(",")
        results = Results(names, [*rows, *(MEMORY_ROWS if memory else [])])
        at_once: dict[str, float] = {}
        if memory:
            for e in daemons:
                results.add("h idle", e.name, memory_sample(e, args.runs))
        for group in chosen:
            takers = [e for e in engines if group.needs in e.can]
            print(f"[bench] {group.key}: {', '.join(e.name for e in takers)}", flush=True)
            live = []
            for e in takers:
                try:
                    group.setup(bench, e)
                    live.append(e)
                except StepFailed as err:
                    for row in group.rows:
                        results.fail(row.key, e.name, short(str(err)))
            for i in range(args.runs):
                order = live[i % len(live) :] + live[: i % len(live)] if live else []
                for e in order:
                    if any(e.name in results.failures.get(r.key, {}) for r in group.rows):
                        continue
                    try:
                        for key, value in group.measure(bench, e, i).items():
                            results.add(key, e.name, value)
                        if memory and (d := daemon_of(e, daemons)) is not None:
                            # kept for the record: the last one is what the daemon held the
                            # moment its own last workload ended, before any quiet (the
                            # peers' turns after it are quiet time for it)
                            at_once[d.name] = memory_now(d)
                    except StepFailed as err:
                        for row in group.rows:
                            results.fail(row.key, e.name, short(str(err)))
                        print(f"[bench] {group.key} / {e.name} failed: {err}", flush=True)
            for e in live:
                try:
                    group.teardown(bench, e)
                except StepFailed as err:
                    print(f"[bench] teardown of {group.key} on {e.name}: {err}", flush=True)
        if memory:
            print(f"[bench] h after: {args.settle:g} s of quiet first", flush=True)
            time.sleep(args.settle)
            for e in daemons:
                results.add("h after", e.name, memory_sample(e, args.runs))
        if not args.only or "floors" in args.only.split(","):
            print("[bench] floors", flush=True)
            for name, fn in floors(bench, image, blobs).items():
                samples = results.floors.setdefault(name, Samples())
                for i in range(args.runs):
                    try:
                        samples.add(fn(i))
                    except StepFailed as err:
                        print(f"[bench] floor {name} failed: {err}", flush=True)
                        break
        note = args.note or (
            "Loaded machine: other work ran beside this run; the figures are a placeholder."
            if os.getloadavg()[0] > 1.5
            else "Quiet machine."
        )
        notes = [
            "Docker legacy and BuildKit are one Debian dockerd 20.10 driven by Debian's docker "
            "20.10 CLI with DOCKER_BUILDKIT=0 and =1; Podman and Buildah run with private "
            "storage (overlay), cgroupfs and a file events log; dockyard with its own CLI.",
            "Every engine runs inside the benchmark's own network namespace (bridges, NAT "
            "and the registries on its loopback).",
            "Cold builds use --no-cache; the f rows build a copy of the context in a directory "
            "no engine has seen, with one file changed, then the same directory again (cached).",
            "g: the image is pulled from a local docker-registry after `rmi`; push goes to a "
            "second, emptied registry, so every blob is uploaded.",
            "h: RSS of the daemon and its child daemons (dockerd + containerd; dockyard's "
            f"daemon), no containers running; after: once every daemon had {args.settle:g} s of "
            "quiet after the last workload (dockyard re-executes itself in place after 60 s "
            "idle, to give back what the work left in its heap). Per container: (PSS of the daemon and of every "
            "per-container process with N containers each with `-p`, minus the same with "
            "none) / N; Podman has no daemon, only conmon per container.",
            f"Sizes: {sizes}",
        ]
        if at_once:
            notes.append(
                "h, read the moment each daemon's own last workload ended (one reading, not a "
                "row): " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in at_once.items())
            )
        text = write(
            args.out,
            results,
            title_note=note,
            date=date,
            versions=eng.versions(),
            load_start=load_start,
            load_end=load_average(),
            runs=args.runs,
            command=" ".join(["bench/run.py", *sys.argv[1:]]),
            notes=notes,
        )
        print(text)
    finally:
        for e in engines:
            try:
                e.stop()
            except Exception as err:  # a cleanup failure must not hide the others
                print(f"[bench] stopping {e.name}: {err}", file=sys.stderr)
        for reg in (pull_reg, push_reg):
            if reg is not None:
                reg.cleanup()
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
        unmount_all_under(base)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
