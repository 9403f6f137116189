package gpu

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeDevice struct {
	mem  nvml.Memory
	util uint32
	ret  nvml.Return
}

func (f fakeDevice) GetMemoryInfo() (nvml.Memory, nvml.Return) { return f.mem, f.ret }
func (f fakeDevice) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	return nvml.Utilization{Gpu: f.util}, f.ret
}

func TestCollectorExportsMemoryAndUtilisationPerDevice(t *testing.T) {
	c := New([]Device{fakeDevice{mem: nvml.Memory{Total: 80 << 30, Used: 3 << 30}, util: 42}},
		[]string{"NVIDIA H100"}, nil)
	want := `
# HELP yoloforge_gpu_memory_used_bytes GPU memory in use (every process)
# TYPE yoloforge_gpu_memory_used_bytes gauge
yoloforge_gpu_memory_used_bytes{gpu="0",name="NVIDIA H100"} 3.221225472e+09
# HELP yoloforge_gpu_utilization_ratio Share of the last sample period the GPU was busy
# TYPE yoloforge_gpu_utilization_ratio gauge
yoloforge_gpu_utilization_ratio{gpu="0",name="NVIDIA H100"} 0.42
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "yoloforge_gpu_memory_used_bytes",
		"yoloforge_gpu_utilization_ratio"); err != nil {
		t.Fatal(err)
	}
}

func TestADeviceThatDoesNotAnswerIsLeftOutOfTheScrape(t *testing.T) {
	c := New([]Device{fakeDevice{ret: nvml.ERROR_GPU_IS_LOST}, fakeDevice{mem: nvml.Memory{Total: 1, Used: 1}}},
		[]string{"lost", "ok"}, nil)
	if n := testutil.CollectAndCount(c); n != 3 {
		t.Fatalf("%d series, want the 3 of the answering device", n)
	}
	if err := prometheus.NewRegistry().Register(c); err != nil {
		t.Fatal(err)
	}
}

func TestOpenWithoutADriverSaysWhyInsteadOfPanicking(t *testing.T) {
	c, err := Open()
	if err == nil { // a machine with an NVIDIA driver: the collector works there
		defer c.Close()
		if testutil.CollectAndCount(c) == 0 {
			t.Fatal("NVML opened but no series were collected")
		}
		return
	}
	if !strings.Contains(err.Error(), "NVML") {
		t.Fatalf("error %q does not name NVML", err)
	}
}
