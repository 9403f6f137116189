// Package gpu exports the GPUs' memory and utilisation as Prometheus series, read through NVIDIA's NVML
// (github.com/NVIDIA/go-nvml loads libnvidia-ml at run time, so the binary needs no GPU to build or to start).
package gpu

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// Device is the part of an NVML device the collector reads.
type Device interface {
	GetMemoryInfo() (nvml.Memory, nvml.Return)
	GetUtilizationRates() (nvml.Utilization, nvml.Return)
}

// Collector reads every device on each scrape: NVML answers in microseconds, so nothing is polled in between.
type Collector struct {
	devices          []Device
	names            []string
	used, total, use *prometheus.Desc
	close            func()
}

// New collects from the given devices (named by index labels 0, 1, ...).
func New(devices []Device, names []string, closeFn func()) *Collector {
	labels := []string{"gpu", "name"}
	return &Collector{devices: devices, names: names, close: closeFn,
		used:  prometheus.NewDesc("yoloforge_gpu_memory_used_bytes", "GPU memory in use (every process)", labels, nil),
		total: prometheus.NewDesc("yoloforge_gpu_memory_total_bytes", "GPU memory", labels, nil),
		use: prometheus.NewDesc("yoloforge_gpu_utilization_ratio",
			"Share of the last sample period the GPU was busy", labels, nil)}
}

// Open finds the machine's GPUs through NVML; an error says why there are none (no driver library, no device).
func Open() (*Collector, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML: %w", nvmlError(ret))
	}
	count, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS || count == 0 {
		nvml.Shutdown()
		if ret == nvml.SUCCESS {
			return nil, errors.New("NVML: no GPU")
		}
		return nil, fmt.Errorf("NVML device count: %w", nvmlError(ret))
	}
	devices, names := make([]Device, 0, count), make([]string, 0, count)
	for i := 0; i < count; i++ {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			nvml.Shutdown()
			return nil, fmt.Errorf("NVML device %d: %w", i, nvmlError(ret))
		}
		name, _ := d.GetName()
		devices, names = append(devices, d), append(names, name)
	}
	return New(devices, names, func() { nvml.Shutdown() }), nil
}

func nvmlError(ret nvml.Return) error { return errors.New(nvml.ErrorString(ret)) }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.total
	ch <- c.use
}

// Collect implements prometheus.Collector; a device that does not answer is left out of this scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for i, d := range c.devices {
		labels := []string{strconv.Itoa(i), c.names[i]}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(m.Used), labels...)
			ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(m.Total), labels...)
		}
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.use, prometheus.GaugeValue, float64(u.Gpu)/100, labels...)
		}
	}
}

// Close releases NVML.
func (c *Collector) Close() {
	if c.close != nil {
		c.close()
	}
}
