"""dltrain under a real Slurm: a one-machine cluster (munged, slurmctld, slurmd
from Debian's packages, with a generated configuration in a temporary
directory) started and stopped by this test; `srun -n 4 --mpi=pmix dltrain
train` must give every rank its rank and local rank and learn.

usage: test_slurm.py DLTRAIN
Exits 77 (skipped) with the reason where Slurm cannot be started here."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idx_fixture  # noqa: E402
from checks import check, exit_code  # noqa: E402

SKIP = 77
DLTRAIN = os.path.abspath(sys.argv[1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(d):
    ctld, slurmd = free_port(), free_port()
    conf = f"""ClusterName=dltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/linear
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmdParameters=config_overrides
NodeName=dlnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=dl Nodes=dlnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
    os.makedirs(f"{d}/state"), os.makedirs(f"{d}/spool")
    with open(f"{d}/slurm.conf", "w") as f:
        f.write(conf)
    return f"{d}/slurm.conf"


class Cluster:
    def __init__(self, d):
        self.d, self.procs = d, []
        self.env = dict(os.environ, SLURM_CONF=write_config(d))

    def start(self):
        """Returns None when the cluster is up, else why not."""
        key = f"{self.d}/munge.key"
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        munged = ["munged", "-F", "--force", f"--key-file={key}", f"--socket={self.d}/munge.sock",
                  f"--pid-file={self.d}/munged.pid", f"--log-file={self.d}/munged.log",
                  f"--seed-file={self.d}/munged.seed"]
        self.spawn(munged)
        if not self.wait_for(lambda: os.path.exists(f"{self.d}/munge.sock"), 10):
            return "munged did not start: " + self.tail("munged.log")
        self.spawn(["slurmctld", "-D", "-i"])
        self.spawn(["slurmd", "-D", "-N", "dlnode"])
        if not self.wait_for(self.node_idle, 30):
            return "the node did not come up: " + self.tail("slurmctld.log") + " | " + \
                self.tail("slurmd.log")
        return None

    def spawn(self, cmd):
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                           stderr=open(f"{self.d}/{cmd[0]}.err", "w")))

    def node_idle(self):
        p = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True,
                           text=True)
        return p.returncode == 0 and p.stdout.strip() in ("idle", "mixed")

    def wait_for(self, cond, seconds):
        end = time.time() + seconds
        while time.time() < end:
            if cond():
                return True
            time.sleep(0.3)
        return False

    def tail(self, name):
        for n in (name, name.split(".")[0] + ".err"):
            try:
                lines = open(f"{self.d}/{n}").read().strip().splitlines()
                if lines:
                    return lines[-1][-300:]
            except OSError:
                pass
        return "(no log)"

    def stop(self):
        for p in reversed(self.procs):  # slurmd, slurmctld, munged: by pid, ours only
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.kill_step_daemons()

    def kill_step_daemons(self):
        """A job step's slurmstepd can outlive slurmd (seen once in many
        runs); ours are those whose environment names this cluster's
        configuration."""
        conf = f"SLURM_CONF={self.d}/slurm.conf".encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != "slurmstepd":
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if conf not in f.read().split(b"\0"):
                        continue
                os.kill(int(pid), signal.SIGKILL)
            except OSError:  # gone meanwhile, or not ours to read
                continue


def run_train(cluster, tmp, data):
    out = os.path.join(tmp, "run")
    cmd = ["srun", "-n", "4", "--overcommit", "--mpi=pmix", "--kill-on-bad-exit=1",
           DLTRAIN, "train", "--model", "lenet", "--data", data, "--epochs", "4", "--batch", "16",
           "--threads", "1", "--no-progress", "--log-all", "--out", out, "--json", out + ".json"]
    p = subprocess.run(cmd, cwd=tmp, env=cluster.env, capture_output=True, text=True, timeout=900)
    if not check("srun -n 4 dltrain train", p.returncode == 0,
                 (p.stderr.strip() or p.stdout.strip())[-400:]):
        return
    host = socket.gethostname()
    want = f"1 node: {host} ranks 0,1,2,3 (local 0,1,2,3)"
    check("4 ranks, one node, local ranks 0-3", "4 rank(s)" in p.stdout and want in p.stdout,
          next((l.strip() for l in p.stdout.splitlines() if "node" in l and "ranks" in l), ""))
    for r in (1, 2, 3):  # each rank printed its own summary (--log-all)
        log = os.path.join(out, f"rank-{r}.log")
        check(f"rank {r} ran and saw the same layout", os.path.exists(log) and
              want in open(log).read())
    with open(out + ".json") as f:
        final = [r for r in map(json.loads, f) if r["type"] == "final"][-1]
    check("training under srun learns", final["test_acc"] > 0.8,
          f"test acc {final['test_acc']:.3f} (needs 0.8)")


def main():
    if os.geteuid() != 0:
        print("SKIP: not root (munged and slurmd are started as root)")
        return SKIP
    missing = [b for b in ("munged", "slurmctld", "slurmd", "srun", "sinfo")
               if not shutil.which(b)]
    if missing:
        print(f"SKIP: not installed: {', '.join(missing)} (Debian: slurmd slurmctld slurm-client "
              "munge; scripts/install-deps.sh)")
        return SKIP
    d = tempfile.mkdtemp(prefix="dlslurm-", dir="/tmp")
    cluster = Cluster(d)
    try:
        why = cluster.start()
        if why:
            print(f"SKIP: Slurm did not start here: {why}")
            return SKIP
        data = idx_fixture.make_dataset(os.path.join(d, "data"), n_train=512, n_test=128)
        run_train(cluster, d, data)
    finally:
        cluster.stop()
        shutil.rmtree(d, ignore_errors=True)
    return exit_code("slurm")


if __name__ == "__main__":
    sys.exit(main())
