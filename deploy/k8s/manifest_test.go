package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests are the documents of every *.yaml file here, decoded.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// splitDocuments splits a YAML stream at its "---" lines, dropping
// documents that hold only comments.
func splitDocuments(src []byte) [][]byte {
	var docs [][]byte
	for doc := range strings.SplitSeq(string(src), "\n---\n") {
		for line := range strings.SplitSeq(doc, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, []byte(doc))
				break
			}
		}
	}
	return docs
}

// decode decodes every document of src strictly: a field the type does not
// have, a duplicate field, or a kind this test does not know is an error.
func decode(src []byte) (*manifests, error) {
	m := &manifests{}
	for i, doc := range splitDocuments(src) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			m.services, obj = append(m.services, s), s
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, p), p
		case "autoscaling/v2 HorizontalPodAutoscaler":
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			m.hpas, obj = append(m.hpas, h), h
		default:
			return nil, fmt.Errorf("document %d: unknown apiVersion %q kind %q", i+1, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, meta.Kind, err)
		}
	}
	return m, nil
}

// serveFlags are the hostharness serve flags a container's command and
// args set, by name without dashes.
func serveFlags(c corev1.Container) map[string]string {
	flags := map[string]string{}
	for _, arg := range slices.Concat(c.Command, c.Args) {
		if name, value, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "="); ok && strings.HasPrefix(arg, "--") {
			flags[name] = value
		}
	}
	return flags
}

// flagPort returns the port of a HOST:PORT flag.
func flagPort(flags map[string]string, name string) (int32, error) {
	_, port, err := net.SplitHostPort(flags[name])
	if err != nil {
		return 0, fmt.Errorf("--%s=%q: %w", name, flags[name], err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("--%s=%q: %w", name, flags[name], err)
	}
	return int32(n), nil
}

// containerPort resolves a probe's or Service's target port (a number or
// a port name) on c.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, error) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("port %s is not a port of container %s", p.String(), c.Name)
}

// check returns every inconsistency between the manifests: what a cluster
// would accept but would not work as meant.
func check(m *manifests) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.pdbs) != 1 || len(m.hpas) != 1 {
		bad("want one Deployment, Service, PodDisruptionBudget and HorizontalPodAutoscaler, have %d, %d, %d, %d",
			len(m.deployments), len(m.services), len(m.pdbs), len(m.hpas))
		return errs
	}
	d := m.deployments[0]
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	selects := func(what string, sel *metav1.LabelSelector) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		switch {
		case err != nil:
			bad("%s selector: %v", what, err)
		case sel == nil || s.Empty():
			bad("%s has an empty selector: it would select every pod", what)
		case !s.Matches(podLabels):
			bad("%s selector %s does not match the Deployment's pod labels %v", what, s, podLabels)
		}
	}
	selects("Deployment", d.Spec.Selector)
	if len(pod.Spec.Containers) != 1 {
		bad("want one container, have %d", len(pod.Spec.Containers))
		return errs
	}
	c := pod.Spec.Containers[0]
	flags := serveFlags(c)

	// Ports: the listener and the admin listener are the container's ports.
	httpPort, err := flagPort(flags, "listen")
	if err != nil {
		bad("%v", err)
	} else if p, err := containerPort(c, intstr.FromString("http")); err != nil || p != httpPort {
		bad("container port http is %d (%v), want --listen's %d", p, err, httpPort)
	}
	adminPort, err := flagPort(flags, "admin")
	if err != nil {
		bad("the admin listener: %v", err)
	}
	for _, probe := range []struct {
		name string
		p    *corev1.Probe
		path string
	}{
		{"startupProbe", c.StartupProbe, "/livez"},
		{"livenessProbe", c.LivenessProbe, "/livez"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		if probe.p == nil || probe.p.HTTPGet == nil {
			bad("%s: want an httpGet probe of %s", probe.name, probe.path)
			continue
		}
		if probe.p.HTTPGet.Path != probe.path {
			bad("%s probes %s, want %s", probe.name, probe.p.HTTPGet.Path, probe.path)
		}
		if p, err := containerPort(c, probe.p.HTTPGet.Port); err != nil {
			bad("%s: %v", probe.name, err)
		} else if p != adminPort {
			bad("%s probes port %d, want the admin listener's %d (--admin)", probe.name, p, adminPort)
		}
	}

	// Stopping: the grace period covers the delay and the drain, and the
	// delay outlasts the readiness probe's noticing.
	delay, errDelay := time.ParseDuration(flags["shutdown-delay"])
	drain, errDrain := time.ParseDuration(flags["drain-timeout"])
	switch {
	case errDelay != nil || errDrain != nil:
		bad("want --shutdown-delay and --drain-timeout durations: %v", errors.Join(errDelay, errDrain))
	case pod.Spec.TerminationGracePeriodSeconds == nil:
		bad("no terminationGracePeriodSeconds (the default 30 s is implicit)")
	default:
		grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		if grace < delay+drain {
			bad("terminationGracePeriodSeconds %v < --shutdown-delay %v + --drain-timeout %v", grace, delay, drain)
		}
		if r := c.ReadinessProbe; r != nil {
			notice := time.Duration(r.PeriodSeconds*r.FailureThreshold+r.TimeoutSeconds) * time.Second
			if delay < notice {
				bad("--shutdown-delay %v is shorter than the readiness probe takes to notice (%v)", delay, notice)
			}
		}
	}

	// Hardening and the writable cache.
	sc := c.SecurityContext
	switch {
	case sc == nil:
		bad("container has no securityContext")
	default:
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			bad("want runAsNonRoot and runAsUser 65532 (the image's user)")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("want readOnlyRootFilesystem")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("want allowPrivilegeEscalation: false")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			bad("want capabilities: drop ALL, add none")
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			bad("want seccompProfile RuntimeDefault")
		}
	}
	cacheDir := flags["cache-dir"]
	var cacheVolume string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == cacheDir && !vm.ReadOnly {
			cacheVolume = vm.Name
		}
	}
	if i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == cacheVolume }); cacheVolume == "" || i < 0 || pod.Spec.Volumes[i].EmptyDir == nil {
		bad("--cache-dir=%s is not a writable emptyDir volume mount", cacheDir)
	}

	// Resources: requests and limits of memory, the limit above the request.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Memory().IsZero() || lim.Memory().IsZero() || req.Cpu().IsZero() {
		bad("want memory requests and limits and a cpu request (the HPA's utilization needs it)")
	} else if lim.Memory().Cmp(*req.Memory()) < 0 {
		bad("memory limit %s is below the request %s", lim.Memory(), req.Memory())
	}

	// The Service, the PDB and the HPA refer to the Deployment.
	svc := m.services[0]
	if s := labels.SelectorFromSet(svc.Spec.Selector); len(svc.Spec.Selector) == 0 || !s.Matches(podLabels) {
		bad("Service selector %v does not match the pod labels %v", svc.Spec.Selector, podLabels)
	}
	for _, sp := range svc.Spec.Ports {
		if p, err := containerPort(c, sp.TargetPort); err != nil {
			bad("Service port %s: %v", sp.Name, err)
		} else if p != httpPort {
			bad("Service port %s targets %d, not the guest's listener %d", sp.Name, p, httpPort)
		}
	}
	pdb := m.pdbs[0]
	selects("PodDisruptionBudget", pdb.Spec.Selector)
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.Type != intstr.Int || pdb.Spec.MinAvailable.IntVal >= replicas {
		bad("PodDisruptionBudget minAvailable %v must be a number below the replicas (%d), or no pod could ever be evicted", pdb.Spec.MinAvailable, replicas)
	}
	hpa := m.hpas[0]
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		bad("HorizontalPodAutoscaler targets %s %s %q, want apps/v1 Deployment %q", ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != replicas || hpa.Spec.MaxReplicas < replicas {
		bad("HorizontalPodAutoscaler replicas %v..%d, want from the Deployment's %d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, replicas)
	}
	if pdb.Spec.MinAvailable != nil && hpa.Spec.MinReplicas != nil && pdb.Spec.MinAvailable.IntVal >= *hpa.Spec.MinReplicas {
		bad("PodDisruptionBudget minAvailable %d leaves no pod evictable at the HPA's minimum %d", pdb.Spec.MinAvailable.IntVal, *hpa.Spec.MinReplicas)
	}
	return errs
}

// imageEntrypoint returns the ENTRYPOINT of the Dockerfile's last stage,
// the default image.
func imageEntrypoint(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	all := regexp.MustCompile(`(?m)^ENTRYPOINT\s+(\[.*\])\s*$`).FindAllSubmatch(src, -1)
	if len(all) == 0 {
		t.Fatal("Dockerfile has no ENTRYPOINT")
	}
	var ep []string
	if err := json.Unmarshal(all[len(all)-1][1], &ep); err != nil {
		t.Fatalf("Dockerfile ENTRYPOINT: %v", err)
	}
	return ep
}

// readManifests returns every *.yaml file here, concatenated as one stream.
func readManifests(t *testing.T) []byte {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests (*.yaml): %v", err)
	}
	var all [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	return bytes.Join(all, []byte("\n---\n"))
}

func TestManifests(t *testing.T) {
	src := readManifests(t)
	m, err := decode(src)
	if err != nil {
		t.Fatalf("strict decoding: %v", err)
	}
	for _, err := range check(m) {
		t.Error(err)
	}
	if ep := imageEntrypoint(t); !slices.Equal(m.deployments[0].Spec.Template.Spec.Containers[0].Command, ep) {
		t.Errorf("container command %q, want the image's ENTRYPOINT %q", m.deployments[0].Spec.Template.Spec.Containers[0].Command, ep)
	}
	lim := m.deployments[0].Spec.Template.Spec.Containers[0].Resources.Limits.Memory()
	t.Logf("%d deployment, %d service, %d PDB, %d HPA; memory limit %s (%.0f MiB)", len(m.deployments), len(m.services),
		len(m.pdbs), len(m.hpas), lim, math.Round(float64(lim.Value())/(1<<20)))
}

// TestManifestsBroken shows that the checks fail where they should: each
// case is the manifests with one change, which decode or check must
// refuse with an error naming the problem.
func TestManifestsBroken(t *testing.T) {
	src := string(readManifests(t))
	tests := []struct {
		name, old, new string
		want           string // in the decode error, or in one check error
	}{
		{"unknown field in the Deployment spec", "  replicas: 3\n", "  replicas: 3\n  replica: 3\n", `json: unknown field "replica"`},
		{"unknown field in a container", "          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          imagePullPolicyy: Always\n", `json: unknown field "imagePullPolicyy"`},
		{"duplicate field", "  replicas: 3\n", "  replicas: 3\n  replicas: 4\n", `key "replicas" already set in map`},
		{"unknown kind", "kind: PodDisruptionBudget\n", "kind: PodDisruptionBudgett\n", "unknown apiVersion"},
		{"readiness on the guest's port", "              path: /readyz\n              port: admin\n", "              path: /readyz\n              port: http\n", "readinessProbe probes port 8080, want the admin listener's 9090"},
		{"probe of a port the container lacks", "              path: /livez\n              port: admin\n            periodSeconds: 10", "              path: /livez\n              port: metrics\n            periodSeconds: 10", "port metrics is not a port of container"},
		{"wrong readiness path", "path: /readyz", "path: /healthz", "readinessProbe probes /healthz, want /readyz"},
		{"admin listener moved", "--admin=0.0.0.0:9090", "--admin=0.0.0.0:9091", "want the admin listener's 9091"},
		{"grace period too short", "terminationGracePeriodSeconds: 20", "terminationGracePeriodSeconds: 12", "terminationGracePeriodSeconds 12s < --shutdown-delay 5s + --drain-timeout 10s"},
		{"shutdown delay too short", "--shutdown-delay=5s", "--shutdown-delay=1s", "shorter than the readiness probe"},
		{"Service selects other pods", "  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: wasiserve", "  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: other", "Service selector"},
		{"HPA targets another Deployment", "    kind: Deployment\n    name: wasiserve", "    kind: Deployment\n    name: wasiserv", `HorizontalPodAutoscaler targets apps/v1 Deployment "wasiserv"`},
		{"PDB blocks every eviction", "minAvailable: 2", "minAvailable: 3", "no pod could ever be evicted"},
		{"root filesystem writable", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "want readOnlyRootFilesystem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(src, tt.old) != 1 {
				t.Fatalf("the manifests hold %q %d times, want once", tt.old, strings.Count(src, tt.old))
			}
			broken := strings.Replace(src, tt.old, tt.new, 1)
			m, err := decode([]byte(broken))
			var got []string
			if err != nil {
				got = []string{err.Error()}
			} else {
				for _, e := range check(m) {
					got = append(got, e.Error())
				}
			}
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("want an error with %q, got %q", tt.want, got)
			}
		})
	}
}
