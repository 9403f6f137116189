// Package engine runs the model: ONNX Runtime in process through its C API (github.com/yalue/onnxruntime_go),
// with the CPU, OpenVINO, CUDA or TensorRT execution provider.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// Engine runs batches of pre-processed images.
type Engine interface {
	// Infer runs n images laid out as n x 3 x imgsz x imgsz floats and returns each image's outputs.
	Infer(ctx context.Context, input []float32, n int) ([][]yolo.Output, error)
	Close() error
}

// Config says which library, model files and execution provider to use.
type Config struct {
	Library  string         // path of libonnxruntime.so
	Models   map[int]string // batch size → ONNX file; batch 0 means a model with a dynamic batch axis
	Imgsz    int
	Provider string // cpu, openvino (ONNX Runtime's OpenVINO build), cuda or tensorrt
	Threads  int    // intra-op threads (CPU); 0 lets ONNX Runtime choose
	DeviceID int
	FP16     bool   // TensorRT: build fp16 engines
	Spin     bool   // let idle intra-op threads spin (lower latency, but they take CPU from request handling)
	CacheDir string // TensorRT: engine cache
}

var initOnce sync.Once
var initErr error

func initialize(library string) error {
	initOnce.Do(func() {
		if _, err := os.Stat(library); err != nil {
			initErr = fmt.Errorf("ONNX Runtime library %q: %w (set ort_library in config.yaml or YOLOFORGE_ORT_LIBRARY)",
				library, err)
			return
		}
		ort.SetSharedLibraryPath(library)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("loading ONNX Runtime from %s: %w", library, err)
		}
	})
	return initErr
}

type session struct {
	batch   int // 0: dynamic
	s       *ort.DynamicAdvancedSession
	outputs int
	cost    time.Duration // one call, measured at warm-up
}

// ORT is an Engine on ONNX Runtime: one session per model file (static batch sizes). A batch of n images is
// split over the sessions in the way their measured call times say is fastest: on a CPU, where batch 8 costs
// eight batch-1 calls, four images run as four batch-1 calls rather than a padded batch of 8; on a GPU, where a
// call costs about the same at any batch, they run padded.
type ORT struct {
	cfg      Config
	sessions map[int]*session
	sizes    []int
}

// Open loads every model file of the config.
func Open(cfg Config) (*ORT, error) {
	if err := initialize(cfg.Library); err != nil {
		return nil, err
	}
	e := &ORT{cfg: cfg, sessions: map[int]*session{}}
	for batch, path := range cfg.Models {
		s, err := e.openSession(path)
		if err != nil {
			e.Close()
			return nil, err
		}
		if s.batch != batch && batch != 0 {
			e.Close()
			return nil, fmt.Errorf("%s has batch %d, the config says %d", path, s.batch, batch)
		}
		e.sessions[s.batch] = s
		e.sizes = append(e.sizes, s.batch)
	}
	if len(e.sessions) == 0 {
		return nil, errors.New("no model file configured")
	}
	slices.Sort(e.sizes)
	for _, s := range e.sessions {
		if err := e.warmUp(s); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// warmUp runs a session a few times (first calls allocate, and TensorRT builds its engine) and keeps the
// fastest call time, which plans the batches.
func (e *ORT) warmUp(s *session) error {
	size := max(s.batch, 1)
	input := make([]float32, size*3*e.cfg.Imgsz*e.cfg.Imgsz)
	for i := 0; i < 3; i++ {
		started := time.Now()
		if _, err := s.run(input, size, e.cfg.Imgsz, size); err != nil {
			return fmt.Errorf("warm-up of the batch-%d model: %w", s.batch, err)
		}
		if took := time.Since(started); i == 0 || took < s.cost {
			s.cost = took
		}
	}
	return nil
}

func (e *ORT) options() (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	if e.cfg.Threads > 0 {
		if err := opts.SetIntraOpNumThreads(e.cfg.Threads); err != nil {
			return nil, err
		}
	}
	_ = opts.SetInterOpNumThreads(1)
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, err
	}
	// the server shares the CPU with HTTP and pre-processing: by default idle inference threads do not spin
	if !e.cfg.Spin {
		if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, err
		}
	}
	device := fmt.Sprint(e.cfg.DeviceID)
	switch e.cfg.Provider {
	case "", "cpu":
	case "openvino":
		// ONNX Runtime's OpenVINO build (the onnxruntime-openvino library the bundle ships) runs the graph on
		// OpenVINO's CPU plugin, which the engines stage measured as its own backend
		settings := map[string]string{"device_type": "CPU"}
		if e.cfg.Threads > 0 {
			settings["num_of_threads"] = fmt.Sprint(e.cfg.Threads)
		}
		if e.cfg.CacheDir != "" {
			settings["cache_dir"] = e.cfg.CacheDir
		}
		if err := opts.AppendExecutionProviderOpenVINO(settings); err != nil {
			return nil, fmt.Errorf("the OpenVINO execution provider cannot start (%w): ort_library must be the "+
				"onnxruntime-openvino build the bundle ships (lib/openvino/), or set engine.provider: cpu", err)
		}
	case "tensorrt":
		trt, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return nil, providerMissing("TensorRT", err)
		}
		defer trt.Destroy()
		fp16 := "0"
		if e.cfg.FP16 {
			fp16 = "1"
		}
		settings := map[string]string{"device_id": device, "trt_fp16_enable": fp16}
		if e.cfg.CacheDir != "" {
			settings["trt_engine_cache_enable"] = "1"
			settings["trt_engine_cache_path"] = e.cfg.CacheDir
		}
		if err := trt.Update(settings); err != nil {
			return nil, fmt.Errorf("TensorRT options: %w", err)
		}
		if err := opts.AppendExecutionProviderTensorRT(trt); err != nil {
			return nil, providerMissing("TensorRT", err)
		}
		fallthrough // CUDA runs what TensorRT does not take
	case "cuda":
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, providerMissing("CUDA", err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(map[string]string{"device_id": device}); err != nil {
			return nil, fmt.Errorf("CUDA options: %w", err)
		}
		if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
			return nil, providerMissing("CUDA", err)
		}
	default:
		return nil, fmt.Errorf("unknown execution provider %q (cpu, openvino, cuda or tensorrt)", e.cfg.Provider)
	}
	return opts, nil
}

func providerMissing(name string, err error) error {
	return fmt.Errorf("the %s execution provider cannot start (%w): use the CUDA image with its GPU libraries "+
		"and an NVIDIA GPU, or set engine.provider: cpu", name, err)
}

func (e *ORT) openSession(path string) (*session, error) {
	inputs, outputs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", path, err)
	}
	if len(inputs) != 1 || len(inputs[0].Dimensions) != 4 {
		return nil, fmt.Errorf("model %s: want one NCHW image input, got %d inputs", path, len(inputs))
	}
	dims := inputs[0].Dimensions
	if dims[2] > 0 && int(dims[2]) != e.cfg.Imgsz {
		return nil, fmt.Errorf("model %s takes %dx%d images, the config says imgsz %d", path, dims[3], dims[2], e.cfg.Imgsz)
	}
	names := make([]string, len(outputs))
	for i, o := range outputs {
		names[i] = o.Name
	}
	opts, err := e.options()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	s, err := ort.NewDynamicAdvancedSession(path, []string{inputs[0].Name}, names, opts)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return &session{batch: max(int(dims[0]), 0), s: s, outputs: len(outputs)}, nil
}

// Infer runs n images, chunked over the sessions' batch sizes as plan says.
func (e *ORT) Infer(ctx context.Context, input []float32, n int) ([][]yolo.Output, error) {
	per := 3 * e.cfg.Imgsz * e.cfg.Imgsz
	if len(input) != n*per {
		return nil, fmt.Errorf("input has %d values, want %d for %d images", len(input), n*per, n)
	}
	results := make([][]yolo.Output, 0, n)
	start := 0
	for _, size := range e.plan(n) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := e.sessions[size]
		if size == 0 {
			size = n - start
		}
		take := min(size, n-start)
		chunk := input[start*per : (start+take)*per]
		if take < size { // pad to the session's fixed batch
			padded := make([]float32, size*per)
			copy(padded, chunk)
			chunk = padded
		}
		outs, err := s.run(chunk, size, e.cfg.Imgsz, take)
		if err != nil {
			return nil, err
		}
		results = append(results, outs...)
		start += take
	}
	return results, nil
}

// plan is the sequence of session batch sizes that covers n images in the least measured time.
func (e *ORT) plan(n int) []int {
	if _, ok := e.sessions[0]; ok {
		return []int{0}
	}
	best := make([]time.Duration, n+1) // best[k]: least time to run k images
	first := make([]int, n+1)          // the batch size of the first call of that plan
	for k := 1; k <= n; k++ {
		best[k] = -1
		for _, size := range e.sizes {
			t := e.sessions[size].cost + best[max(k-size, 0)]
			if best[k] < 0 || t < best[k] {
				best[k], first[k] = t, size
			}
		}
	}
	var sizes []int
	for k := n; k > 0; k -= first[k] {
		sizes = append(sizes, first[k])
	}
	return sizes
}

func (s *session) run(chunk []float32, size, imgsz, take int) ([][]yolo.Output, error) {
	in, err := ort.NewTensor(ort.NewShape(int64(size), 3, int64(imgsz), int64(imgsz)), chunk)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs := make([]ort.Value, s.outputs)
	if err := s.s.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("ONNX Runtime run: %w", err)
	}
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	per := make([][]yolo.Output, take)
	for i := range per {
		per[i] = make([]yolo.Output, len(outs))
	}
	for k, v := range outs {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("output %d is not a float32 tensor", k)
		}
		shape := t.GetShape()
		data := t.GetData()
		stride := len(data) / size
		for i := 0; i < take; i++ {
			per[i][k] = yolo.Output{Shape: slices.Clone(shape[1:]), Data: slices.Clone(data[i*stride : (i+1)*stride])}
		}
	}
	return per, nil
}

// Close frees the sessions.
func (e *ORT) Close() error {
	for _, s := range e.sessions {
		s.s.Destroy()
	}
	e.sessions = map[int]*session{}
	return nil
}
