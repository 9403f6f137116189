// Package api is the HTTP side of the server: serving/openapi.yaml's routes, auth, limits, the answer cache,
// JSON, metrics and the inference log. The image's way through the model is package pipeline's.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/pipeline"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/store"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/workers"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// ModelInfo is GET /v1/model.
type ModelInfo struct {
	Name    string     `json:"name"`
	Version string     `json:"version"`
	Task    string     `json:"task"`
	Names   []string   `json:"names"`
	Imgsz   int        `json:"imgsz"`
	Engine  EngineInfo `json:"engine"`
}

// EngineInfo is the engine part of ModelInfo.
type EngineInfo struct {
	Backend      string  `json:"backend"`
	Precision    string  `json:"precision"`
	Batch        int     `json:"batch"`
	Device       string  `json:"device"`
	MaxBatchSize int     `json:"max_batch_size"`
	BatchWaitMS  float64 `json:"batch_wait_ms"`
}

// Logger is where inference log rows go (the Postgres store, or nothing).
type Logger interface {
	Log(store.Entry)
}

// Options configure a Server.
type Options struct {
	Info           ModelInfo
	MaxBody        int64
	RequestTimeout time.Duration
	RetryAfter     int
	AuthRequired   bool
	Batcher        batcher.Options
	// StreamsURL is the bundle's stream service, whose routes the server forwards (nil: no stream routes)
	StreamsURL *url.URL
}

// Deps are what a Server uses beside its options. Keys and Cache are required; Logger, Dependencies and
// LogDropped may be nil.
type Deps struct {
	Keys         *auth.Keys
	Cache        cache.Cache
	Logger       Logger                   // inference log rows (the Postgres store), or nil
	Log          *slog.Logger             // the server's own log
	Dependencies func() map[string]string // /readyz: the cache's and the database's states
	LogDropped   func() float64           // inference log rows dropped (a metric)
}

// Server answers the contract. The engine is attached when loaded, so /healthz answers during a long load
// (a TensorRT engine build) and /readyz says "loading".
type Server struct {
	opts     Options
	deps     Deps
	model    yolo.Model
	pipeline *pipeline.Pipeline
	workers  atomic.Pointer[workers.Pool]
	metrics  *Metrics
	state    atomic.Value // "loading", "loaded", "failed"
	mux      *http.ServeMux
}

// Register adds series of another source (the GPUs) to /metrics.
func (s *Server) Register(c prometheus.Collector) error { return s.metrics.Registry.Register(c) }

// New builds the server; call Attach with the engine once it is loaded.
func New(opts Options, deps Deps) *Server {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Dependencies == nil {
		deps.Dependencies = func() map[string]string { return map[string]string{} }
	}
	if deps.LogDropped == nil {
		deps.LogDropped = func() float64 { return 0 }
	}
	s := &Server{opts: opts, deps: deps,
		model: yolo.Model{Task: opts.Info.Task, Names: opts.Info.Names, Imgsz: opts.Info.Imgsz}}
	s.state.Store("loading")
	s.metrics = NewMetrics(func() float64 { return float64(s.pipeline.QueueLen()) }, deps.LogDropped)
	batching := opts.Batcher
	batching.Observe = func(n int) { s.metrics.BatchSize.Observe(float64(n)) }
	s.pipeline = pipeline.New(s.model, batching, func(stage string, d time.Duration) {
		s.metrics.Stage.WithLabelValues(stage).Observe(d.Seconds())
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/predict", s.route("predict", http.MethodPost, true, s.predict))
	mux.HandleFunc("/v1/model", s.route("model", http.MethodGet, true, s.modelInfo))
	mux.HandleFunc("/healthz", s.route("healthz", http.MethodGet, false, s.healthz))
	mux.HandleFunc("/readyz", s.route("readyz", http.MethodGet, false, s.readyz))
	metrics := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	mux.HandleFunc("/metrics", s.route("metrics", http.MethodGet, false, func(w http.ResponseWriter, r *http.Request) *Error {
		metrics.ServeHTTP(w, r)
		return nil
	}))
	routes := "POST /v1/predict, GET /v1/model, /healthz, /readyz, /metrics"
	if opts.StreamsURL != nil {
		streams := s.route("streams", "", true, s.streamRoutes(opts.StreamsURL))
		mux.HandleFunc("/v1/streams", streams)
		mux.HandleFunc("/v1/streams/", streams)
		routes += ", /v1/streams"
	}
	mux.HandleFunc("/", s.route("other", "", false, func(w http.ResponseWriter, r *http.Request) *Error {
		return &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("no route %s; the API has %s", r.URL.Path, routes)}
	}))
	s.mux = mux
	return s
}

// Metrics gives the Prometheus series (for dependency gauges set by main).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Attach starts batching onto the loaded engine workers: one batch per worker at a time.
func (s *Server) Attach(pool *workers.Pool) {
	s.workers.Store(pool)
	s.pipeline.Attach(pool, pool.Size())
	s.state.Store("loaded")
}

// modelState is "loading", "loaded" or "failed"; a server whose every engine worker failed is "failed".
func (s *Server) modelState() string {
	state := s.state.Load().(string)
	if pool := s.workers.Load(); pool != nil && pool.Live() == 0 {
		return "failed"
	}
	return state
}

// Failed marks the model as failed to load (readyz 503).
func (s *Server) Failed() { s.state.Store("failed") }

// Close drains the batcher (after the HTTP server has stopped taking requests).
func (s *Server) Close() { s.pipeline.Close() }

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type handler func(w http.ResponseWriter, r *http.Request) *Error

// statusWriter records the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) route(name, method string, secured bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err := s.guard(r, method, secured)
		if err == nil {
			err = h(sw, r)
		}
		if err != nil {
			s.writeError(sw, err)
		}
		s.metrics.Requests.WithLabelValues(name, strconv.Itoa(sw.status)).Inc()
		s.metrics.Latency.WithLabelValues(name).Observe(time.Since(started).Seconds())
	}
}

func (s *Server) guard(r *http.Request, method string, secured bool) *Error {
	if method != "" && r.Method != method {
		return &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Allow: method,
			Message: fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, method)}
	}
	if !secured || !s.opts.AuthRequired {
		return nil
	}
	key := auth.Bearer(r.Header.Get("Authorization"))
	if key == "" {
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "missing API key: send 'Authorization: Bearer <key>' (create one with `yoloforge-server keys create`)"}
	}
	if !s.deps.Keys.Valid(key) {
		msg := "the API key is not valid (revoked, mistyped, or from another server)"
		if s.deps.Keys.Len() == 0 {
			msg = "no API key is configured on this server: create one with `yoloforge-server keys create --name NAME` " +
				"or set YOLOFORGE_API_KEYS"
		}
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
	}
	return nil
}

func (s *Server) writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="yoloforge"`)
	}
	if e.Allow != "" {
		w.Header().Set("Allow", e.Allow)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Status >= 500 && e.Code == "internal" {
		s.deps.Log.Error("request failed", "error", e.Message)
	}
	writeJSON(w, e.Status, map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// PredictResponse is the 200 answer of /v1/predict.
type PredictResponse struct {
	Model      ModelRef           `json:"model"`
	Task       string             `json:"task"`
	Image      ImageSize          `json:"image"`
	Detections *[]yolo.Detection  `json:"detections,omitempty"`
	Top        []yolo.ClassScore  `json:"top,omitempty"`
	TimingMS   map[string]float64 `json:"timing_ms"`
	Cached     bool               `json:"cached"`
}

// ModelRef names the model in an answer.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ImageSize is the original image's size.
type ImageSize struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) predict(w http.ResponseWriter, r *http.Request) *Error {
	started := time.Now()
	entry := store.Entry{At: started, ModelVersion: s.opts.Info.Version,
		KeyID: store.KeyID(auth.Hash(auth.Bearer(r.Header.Get("Authorization"))))}
	resp, body, err := s.answer(w, r, started)
	entry.LatencyMS = ms(time.Since(started))
	entry.ImageBytes = body
	if err != nil {
		entry.Status, entry.ErrorCode = err.Status, err.Code
	} else {
		entry.Status, entry.Cached = http.StatusOK, resp.Cached
		if resp.Detections != nil {
			entry.Detections = len(*resp.Detections)
		} else {
			entry.Detections = len(resp.Top)
		}
	}
	if s.deps.Logger != nil {
		s.deps.Logger.Log(entry)
	}
	return err
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, started time.Time) (*PredictResponse, int, *Error) {
	if !s.pipeline.Loaded() {
		return nil, 0, s.runError(pipeline.ErrNotLoaded)
	}
	opts, perr := ParseOptions(r.URL.Query())
	if perr != nil {
		return nil, 0, perr
	}
	if r.ContentLength > s.opts.MaxBody {
		return nil, 0, &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: fmt.Sprintf("the body is %d bytes, over the %d-byte limit (limits.max_body_mb)", r.ContentLength, s.opts.MaxBody)}
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBody)
	data, rerr := ReadImage(r.Header.Get("Content-Type"), r.Body)
	if rerr != nil {
		return nil, 0, rerr
	}
	ctx := r.Context()
	key, cached := s.cached(ctx, data, opts)
	if cached != nil {
		cached.TimingMS = map[string]float64{"total": ms(time.Since(started))}
		writeJSON(w, http.StatusOK, cached)
		return cached, len(data), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	answer, err := s.pipeline.Run(ctx, data, opts)
	if err != nil {
		return nil, len(data), s.runError(err)
	}
	resp := &PredictResponse{Model: ModelRef{Name: s.opts.Info.Name, Version: s.opts.Info.Version},
		Task: s.model.Task, Image: ImageSize{Width: answer.Width, Height: answer.Height}, TimingMS: answer.TimingMS}
	if s.model.Task == "classify" {
		resp.Top = answer.Result.Top
	} else {
		dets := answer.Result.Detections
		if dets == nil {
			dets = []yolo.Detection{}
		}
		resp.Detections = &dets
	}
	if key != "" {
		if encoded, err := json.Marshal(resp); err == nil {
			s.deps.Cache.Set(ctx, key, encoded)
		}
	}
	resp.TimingMS["total"] = ms(time.Since(started))
	writeJSON(w, http.StatusOK, resp)
	return resp, len(data), nil
}

// cached looks the answer up in the cache: its key ("" when there is no cache) and the answer when it is there.
func (s *Server) cached(ctx context.Context, data []byte, opts yolo.Options) (string, *PredictResponse) {
	if !s.deps.Cache.Enabled() { // hashing a large image is not free: only when there is a cache to ask
		return "", nil
	}
	key := cache.Key(s.opts.Info.Version, data, s.paramKey(opts))
	if raw, ok := s.deps.Cache.Get(ctx, key); ok {
		var resp PredictResponse
		if json.Unmarshal(raw, &resp) == nil {
			s.metrics.Cache.WithLabelValues("hit").Inc()
			resp.Cached = true
			return key, &resp
		}
	}
	s.metrics.Cache.WithLabelValues("miss").Inc()
	return key, nil
}

// paramKey is the part of the cache key the answer depends on: classify ignores the detection parameters.
func (s *Server) paramKey(o yolo.Options) string {
	if s.model.Task == "classify" {
		return fmt.Sprintf("k%d", o.TopK)
	}
	return fmt.Sprintf("c%g:i%g:m%d", o.Conf, o.IoU, o.MaxDet)
}

// runError maps the pipeline's errors to the contract's.
func (s *Server) runError(err error) *Error {
	switch {
	case errors.Is(err, pipeline.ErrNotLoaded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message: "the model is " + s.modelState() + "; retry shortly", RetryAfter: s.opts.RetryAfter}
	case errors.Is(err, workers.ErrNoWorkers):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message: "every engine worker has failed (see /readyz); retry on another replica", RetryAfter: s.opts.RetryAfter}
	case errors.As(err, new(*pipeline.BadImageError)):
		return &Error{Status: http.StatusBadRequest, Code: "bad_image", Message: err.Error()}
	case errors.Is(err, pipeline.ErrPostprocess):
		return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
	case errors.Is(err, batcher.ErrOverloaded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message:    "the request queue is full (batcher.max_queue); retry after the given seconds",
			RetryAfter: s.opts.RetryAfter}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message:    fmt.Sprintf("no answer within limits.request_timeout (%s)", s.opts.RequestTimeout),
			RetryAfter: s.opts.RetryAfter}
	case errors.Is(err, batcher.ErrClosed), errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message: "the server is shutting down", RetryAfter: s.opts.RetryAfter}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "inference failed: " + err.Error()}
	}
}

func (s *Server) modelInfo(w http.ResponseWriter, _ *http.Request) *Error {
	writeJSON(w, http.StatusOK, s.opts.Info)
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) *Error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) *Error {
	state := s.modelState()
	status := http.StatusOK
	if state != "loaded" {
		status = http.StatusServiceUnavailable
	}
	body := map[string]any{"ready": state == "loaded", "model": state, "dependencies": s.deps.Dependencies()}
	if pool := s.workers.Load(); pool != nil {
		body["workers"] = pool.Status()
	}
	writeJSON(w, status, body)
	return nil
}
