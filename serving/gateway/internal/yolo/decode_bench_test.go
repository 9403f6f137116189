package yolo

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDecodeFrames decodes the JPEGs in $YOLOFORGE_BENCH_FRAMES (scripts/bench_deploy.py writes camera
// frames there) with Go's image/jpeg and with libjpeg-turbo, whole and for 320 and 640 px models; skipped
// without it.
func BenchmarkDecodeFrames(b *testing.B) {
	dir := os.Getenv("YOLOFORGE_BENCH_FRAMES")
	if dir == "" {
		b.Skip("YOLOFORGE_BENCH_FRAMES is not set")
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if len(paths) == 0 {
		b.Fatalf("no .jpg in %s", dir)
	}
	frames := make([][]byte, len(paths))
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		frames[i] = data
	}
	run := func(name string, decode func([]byte) error) {
		b.Run(name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if err := decode(frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("image-jpeg-whole", func(data []byte) error {
		img, _, err := image.Decode(bytes.NewReader(data))
		if err == nil {
			ToRGB(img)
		}
		return err
	})
	run("turbo-whole", func(data []byte) error { _, _, err := Decode(data); return err })
	for _, imgsz := range []int{320, 640} {
		run(fmt.Sprintf("turbo-for-%d", imgsz), func(data []byte) error {
			_, _, err := DecodeFor(data, imgsz, "detect", nil)
			return err
		})
	}
}

// BenchmarkPreprocessCameraFrame: the letterbox of a whole 1280x720 frame for a 320 px model.
func BenchmarkPreprocessCameraFrame(b *testing.B) {
	img := &RGB{Width: 1280, Height: 720, Pix: make([]uint8, 1280*720*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	dst := make([]float32, 3*320*320)
	for b.Loop() {
		PreprocessFrame(Whole(img), 320, "detect", dst)
	}
}
