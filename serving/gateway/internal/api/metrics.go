package api

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's Prometheus series (the bundle's Grafana dashboard reads these names).
type Metrics struct {
	Registry  *prometheus.Registry
	Requests  *prometheus.CounterVec   // yoloforge_requests_total{route,status}
	Latency   *prometheus.HistogramVec // yoloforge_request_seconds{route}
	Stage     *prometheus.HistogramVec // yoloforge_stage_seconds{stage}: decode, preprocess, queue, inference, ...
	BatchSize prometheus.Histogram     // yoloforge_batch_size
	Cache     *prometheus.CounterVec   // yoloforge_cache_requests_total{result}: hit, miss
	DepUp     *prometheus.GaugeVec     // yoloforge_dependency_up{name}
}

// NewMetrics registers every series, plus Go and process collectors.
func NewMetrics(queueDepth, logDropped func() float64) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yoloforge_requests_total", Help: "Requests by route and status"}, []string{"route", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "yoloforge_request_seconds", Help: "Request latency by route",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "yoloforge_stage_seconds", Help: "Time per predict stage",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"stage"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "yoloforge_batch_size", Help: "Images per engine call",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256}}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yoloforge_cache_requests_total", Help: "Answer cache lookups by result"}, []string{"result"}),
		DepUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yoloforge_dependency_up", Help: "1 when a dependency (cache, database) answers"}, []string{"name"}),
	}
	r.MustRegister(m.Requests, m.Latency, m.Stage, m.BatchSize, m.Cache, m.DepUp,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "yoloforge_queue_depth",
			Help: "Images waiting for a batch"}, queueDepth),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "yoloforge_log_rows_dropped_total",
			Help: "Inference log rows dropped because Postgres was down too long"}, logDropped),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
