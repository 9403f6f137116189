package pipeline

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"testing"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// brightness is an engine for the pipeline's own tests: a two-class classifier whose class 1 score is the mean
// of the input tensor, so what it answers follows from the image the test sends.
type brightness struct{ calls int }

func (b *brightness) Infer(_ context.Context, input []float32, n int) ([][]yolo.Output, error) {
	b.calls++
	per := len(input) / n
	outs := make([][]yolo.Output, n)
	for i := range n {
		var sum float64
		for _, v := range input[i*per : (i+1)*per] {
			sum += float64(v)
		}
		mean := float32(sum / float64(per))
		outs[i] = []yolo.Output{{Shape: []int64{2}, Data: []float32{1 - mean, mean}}}
	}
	return outs, nil
}

func (b *brightness) Close() error { return nil }

func classifier() *Pipeline {
	return New(yolo.Model{Task: "classify", Names: []string{"dark", "light"}, Imgsz: 32},
		batcher.Options{MaxBatch: 4, MaxWait: time.Millisecond, MaxQueue: 8, Workers: 1}, nil)
}

func encoded(t *testing.T, gray uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for y := range 30 {
		for x := range 40 {
			img.Set(x, y, color.RGBA{gray, gray, gray, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRunBeforeAttachIsNotLoaded(t *testing.T) {
	p := classifier()
	if _, err := p.Run(context.Background(), encoded(t, 200), yolo.DefaultOptions()); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("want ErrNotLoaded, got %v", err)
	}
}

func TestUndecodableBytesAreABadImage(t *testing.T) {
	p := classifier()
	p.Attach(&brightness{}, 1)
	defer p.Close()
	_, err := p.Run(context.Background(), []byte("not an image"), yolo.DefaultOptions())
	var bad *BadImageError
	if !errors.As(err, &bad) {
		t.Fatalf("want a BadImageError, got %v", err)
	}
}

func TestAnImageIsAnsweredWithItsSizeAndEveryStageTimed(t *testing.T) {
	p := classifier()
	p.Attach(&brightness{}, 1)
	defer p.Close()
	for _, tc := range []struct {
		gray uint8
		want string
	}{{230, "light"}, {20, "dark"}} {
		answer, err := p.Run(context.Background(), encoded(t, tc.gray), yolo.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if answer.Width != 40 || answer.Height != 30 {
			t.Errorf("size %dx%d, want the original 40x30", answer.Width, answer.Height)
		}
		if got := answer.Result.Top[0].ClassName; got != tc.want {
			t.Errorf("gray %d: top class %q, want %q", tc.gray, got, tc.want)
		}
		for _, stage := range []string{"decode", "preprocess", "queue", "inference", "postprocess"} {
			if _, ok := answer.TimingMS[stage]; !ok {
				t.Errorf("no %s timing in %v", stage, answer.TimingMS)
			}
		}
	}
}

func TestEveryStageIsObserved(t *testing.T) {
	seen := map[string]int{}
	p := New(yolo.Model{Task: "classify", Names: []string{"dark", "light"}, Imgsz: 32},
		batcher.Options{MaxBatch: 1, MaxWait: time.Millisecond, MaxQueue: 8, Workers: 1},
		func(stage string, _ time.Duration) { seen[stage]++ })
	p.Attach(&brightness{}, 1)
	if _, err := p.Run(context.Background(), encoded(t, 100), yolo.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	p.Close() // the batcher's worker has finished: its observation is visible
	for _, stage := range []string{"decode", "preprocess", "queue", "inference", "postprocess"} {
		if seen[stage] != 1 {
			t.Errorf("%s observed %d times, want 1 (%v)", stage, seen[stage], seen)
		}
	}
}
