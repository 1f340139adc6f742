#!/usr/bin/env python3
"""Checks the Kubernetes manifests in k8s/base against each other and
against the programs: every file parses as YAML with apiVersion, kind and a
name; every ConfigMap key, Secret, volume, port and $(VAR) a container
refers to exists; Services select pods and name their ports; the CAS shard
list matches the StatefulSet; every flag in a container's args is one the
program accepts (asked of the built binary's --help); the TLS paths point
into the mounted Secret; the HPA scales a Deployment on a metric the
scheduler really serves (scraped from a running scheduler); and, when
kubectl is installed, kustomize renders the whole.
Usage: manifests_test.py ROOT BIN_DIR. Prints PASS/FAIL lines."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT, BIN = sys.argv[1], sys.argv[2]
BASE = os.path.join(ROOT, "k8s", "base")
failed = False


def check(name, ok, why=""):
    global failed
    if ok:
        print("PASS k8s: " + name)
    else:
        failed = True
        print("FAIL k8s: %s: %s" % (name, why))


kust = yaml.safe_load(open(os.path.join(BASE, "kustomization.yaml")))
check("kustomization.yaml is a Kustomization", kust.get("kind") == "Kustomization")
docs = []
for res in kust.get("resources", []):
    path = os.path.join(BASE, res)
    try:
        loaded = [d for d in yaml.safe_load_all(open(path)) if d]
    except (OSError, yaml.YAMLError) as e:
        check("%s parses" % res, False, str(e))
        continue
    good = all(d.get("apiVersion") and d.get("kind") and
               d.get("metadata", {}).get("name") for d in loaded)
    check("%s parses (%d objects, each with apiVersion, kind, name)" %
          (res, len(loaded)), good and loaded, "missing fields")
    docs += loaded

config = {}
for gen in kust.get("configMapGenerator", []):
    keys = {}
    envs = gen.get("envs", []) + ([gen["env"]] if "env" in gen else [])
    for env in envs:
        for line in open(os.path.join(BASE, env)):
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                keys[k] = v
    config[gen["name"]] = keys
secrets = {}
for gen in kust.get("secretGenerator", []):
    secrets[gen["name"]] = [f.split("=", 1)[0] for f in gen.get("files", [])]
for d in docs:
    if d["kind"] == "ConfigMap":
        config[d["metadata"]["name"]] = d.get("data", {})
    if d["kind"] == "Secret":
        secrets[d["metadata"]["name"]] = list(d.get("data", {}))

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
workloads = list(by_kind.get("Deployment", {}).values()) + \
    list(by_kind.get("StatefulSet", {}).values())
check("a CAS StatefulSet, a scheduler and a worker Deployment",
      set(by_kind.get("StatefulSet", {})) == {"stagefarm-cas"} and
      set(by_kind.get("Deployment", {})) == {"stagefarm-scheduler", "stagefarm-worker"},
      str({k: list(v) for k, v in by_kind.items()}))

help_cache = {}


def flags_of(program):
    if program not in help_cache:
        exe = os.path.join(BIN, program)
        out = subprocess.run([exe, "--help"], capture_output=True, text=True)
        help_cache[program] = set(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout + out.stderr))
    return help_cache[program]


for w in workloads:
    name = w["metadata"]["name"]
    spec = w["spec"]["template"]["spec"]
    labels = w["spec"]["template"]["metadata"].get("labels", {})
    check("%s: the selector matches its pods" % name,
          all(labels.get(k) == v for k, v in w["spec"]["selector"]["matchLabels"].items()))
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claim_names = {c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])}
    for v in volumes.values():
        if "secret" in v:
            check("%s: secret %s exists" % (name, v["secret"]["secretName"]),
                  v["secret"]["secretName"] in secrets)
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            check("%s: volume claim %s exists" % (name, claim),
                  claim in by_kind.get("PersistentVolumeClaim", {}))
    for c in spec["containers"]:
        where = "%s/%s" % (name, c["name"])
        env = {}
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                ok = ref["name"] in config and ref["key"] in config[ref["name"]]
                check("%s: config key %s/%s exists" % (where, ref["name"], ref["key"]), ok)
                env[e["name"]] = config.get(ref["name"], {}).get(ref["key"], "")
            else:
                env[e["name"]] = e.get("value", "(from the pod)")
        for ef in c.get("envFrom", []):
            ref = ef.get("configMapRef", {}).get("name")
            check("%s: config map %s exists" % (where, ref), ref in config)
            env.update(config.get(ref, {}))
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        for path, vol in mounts.items():
            check("%s: volume %s for %s exists" % (where, vol, path),
                  vol in volumes or vol in claim_names)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if not p:
                continue
            port = (p.get("httpGet") or p.get("tcpSocket") or p.get("grpc") or {}).get("port")
            check("%s: %s port %s exists" % (where, probe, port),
                  port in ports or port in ports.values())
        program = c["command"][0]
        known = flags_of(program)
        check("%s: %s --help lists its flags" % (where, program), len(known) > 3, str(known))
        for arg in c.get("args", []):
            flag = arg.split("=", 1)[0]
            if flag.startswith("--"):
                check("%s: %s accepts %s" % (where, program, flag), flag in known,
                      "not in %s --help" % program)
            for var in re.findall(r"\$\(([A-Z_]+)\)", arg):
                check("%s: $(%s) in %s is defined" % (where, var, flag), var in env)
        # STAGEFARM_TLS_* must name files of the mounted Secret.
        for key in ("STAGEFARM_TLS_CA", "STAGEFARM_TLS_CERT", "STAGEFARM_TLS_KEY"):
            path = env.get(key)
            if not path:
                check("%s: %s is set" % (where, key), False, "TLS is not configured")
                continue
            d, f = os.path.dirname(path), os.path.basename(path)
            vol = volumes.get(mounts.get(d, ""), {})
            secret = vol.get("secret", {}).get("secretName")
            check("%s: %s=%s is a key of a mounted Secret" % (where, key, path),
                  secret in secrets and f in secrets[secret],
                  "mounted there: %s" % secret)

for s in by_kind.get("Service", {}).values():
    name = s["metadata"]["name"]
    targets = [w for w in workloads
               if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v
                      for k, v in s["spec"]["selector"].items())]
    check("service %s selects one workload" % name, len(targets) == 1)
    if targets:
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            check("service %s: target port %s exists" % (name, p["targetPort"]),
                  p["targetPort"] in ports)

cas = by_kind["StatefulSet"]["stagefarm-cas"]
shards = config["stagefarm-config"]["CAS_SHARDS"].split(",")
expected = ["stagefarm-cas-%d.%s:8980" % (i, cas["spec"]["serviceName"])
            for i in range(cas["spec"]["replicas"])]
check("CAS_SHARDS lists every CAS replica by its stable name", shards == expected,
      "%s vs %s" % (shards, expected))
headless = by_kind["Service"].get(cas["spec"]["serviceName"], {})
check("the CAS service is headless (a DNS name per shard)",
      headless.get("spec", {}).get("clusterIP") == "None")
check("the scheduler's address names its Service",
      config["stagefarm-config"]["SCHEDULER_ADDRESS"].split(":")[0] in by_kind["Service"])
replicas = int(config["stagefarm-config"]["STAGEFARM_CAS_REPLICAS"])
check("CAS replicas (%d) fit the shards (%d)" % (replicas, len(shards)),
      1 <= replicas <= len(shards))
sched = by_kind["Deployment"]["stagefarm-scheduler"]
check("the scheduler is replaced, not rolled (one RocksDB)",
      sched["spec"]["strategy"]["type"] == "Recreate" and sched["spec"]["replicas"] == 1)

hpa = by_kind["HorizontalPodAutoscaler"]["stagefarm-worker"]
check("the HPA scales the worker Deployment",
      hpa["spec"]["scaleTargetRef"]["name"] in by_kind["Deployment"])
metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
# The metric must be one the scheduler serves: start one and scrape it.
work = tempfile.mkdtemp(prefix="k8s-test-")
proc = subprocess.Popen([os.path.join(BIN, "stagefarm-scheduler"), "--listen", "127.0.0.1:0",
                         "--metrics-listen", "127.0.0.1:0"],
                        stdout=open(os.path.join(work, "log"), "w"), stderr=subprocess.STDOUT)
try:
    port = None
    for _ in range(100):
        m = re.search(r"metrics on port (\d+)", open(os.path.join(work, "log")).read())
        if m:
            port = m.group(1)
            break
        time.sleep(0.1)
    body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode() \
        if port else ""
    check("the HPA's metric %s is served by the scheduler" % metric,
          re.search(r"^%s " % re.escape(metric), body, re.M) is not None, body[:300])
finally:
    proc.terminate()
    proc.wait()

# --- rendering (kubectl kustomize) and Kubernetes' own schemas ---------------
# The overlays render from a copy of k8s/ (with placeholder TLS files), so
# nothing is written into the tree.
kubectl = shutil.which("kubectl")
node = shutil.which("node")
MODELS = os.environ.get("STAGEFARM_K8S_MODELS",
                        os.path.expanduser("~/.cache/stagefarm/kubernetes-models"))
check("kubectl is installed (kubectl kustomize renders the manifests)", kubectl is not None,
      "install kubernetes-client")
rendered = {}
if kubectl:
    copy = os.path.join(work, "k8s")
    shutil.copytree(os.path.join(ROOT, "k8s"), copy)
    tls = os.path.join(copy, "base", "tls")
    os.makedirs(tls, exist_ok=True)
    for f in ("ca.crt", "stagefarm.crt", "stagefarm.key"):
        open(os.path.join(tls, f), "w").write("placeholder\n")
    for variant in ("base", "rootless"):
        out = subprocess.run([kubectl, "kustomize", os.path.join(copy, variant)],
                             capture_output=True, text=True)
        objs = [d for d in yaml.safe_load_all(out.stdout) if d] if out.returncode == 0 else []
        check("kubectl kustomize renders k8s/%s (%d objects)" % (variant, len(objs)),
              out.returncode == 0 and len(objs) >= len(docs) + 2, out.stderr[:300])
        rendered[variant] = objs


def worker_of(objs):
    for d in objs:
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "stagefarm-worker":
            return d
    return None


if "rootless" in rendered:
    w = worker_of(rendered["rootless"])
    pod = (w or {}).get("spec", {}).get("template", {}).get("spec", {})
    c = next((c for c in pod.get("containers", []) if c["name"] == "worker"), {})
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check("rootless: the worker's container is not privileged",
          w is not None and sc.get("privileged") is False, str(sc))
    check("rootless: the worker runs as an ordinary user",
          psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, str(psc))
    args = c.get("args", [])
    unknown = [a for a in args if a.startswith("--") and
               a.split("=", 1)[0] not in flags_of("stagefarm-worker")]
    check("rootless: the worker is given --rootless and flags it accepts",
          "--rootless" in args and not unknown, str(unknown or args))
    check("rootless: no --sandbox-deny (a rootless worker refuses it)",
          not any(a.startswith("--sandbox-deny") for a in args), str(args))
    base_w = worker_of(rendered.get("base", []))
    check("base: the worker is privileged (runc as the machine's root)",
          base_w is not None and base_w["spec"]["template"]["spec"]["containers"][0]
          .get("securityContext", {}).get("privileged") is True)

models_ok = node is not None and os.path.isfile(
    os.path.join(MODELS, "node_modules", "kubernetes-models", "package.json"))
check("kubernetes-models is installed (tests/k8s/manifests_test.sh installs it)", models_ok,
      "node or %s missing" % MODELS)


def validate(objs):
    f = os.path.join(work, "objects.json")
    json.dump(objs, open(f, "w"))
    out = subprocess.run([node, os.path.join(ROOT, "tests", "k8s", "validate_models.mjs"),
                          MODELS, f], capture_output=True, text=True)
    return out.stdout.splitlines() + (["error " + out.stderr[:300]] if out.returncode else [])


if models_ok and rendered:
    for variant, objs in rendered.items():
        for line in validate(objs):
            verdict, _, rest = line.partition(" ")
            check("k8s/%s: %s valid against Kubernetes' schemas" % (variant, rest.split(":")[0]),
                  verdict == "ok", line)
    # The validator sees a wrong type: a privileged flag given as a string.
    if "rootless" in rendered:
        bad = json.loads(json.dumps(worker_of(rendered["rootless"])))
        bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = "yes"
        lines = validate([bad])
        check("the schema validation refuses a wrong type",
              len(lines) == 1 and lines[0].startswith("invalid") and "privileged" in lines[0],
              str(lines))
shutil.rmtree(work)
sys.exit(1 if failed else 0)
