package yolo

import (
	"os"
	"testing"
)

func benchDecode(b *testing.B, path string) {
	data, _ := os.ReadFile(path)
	dst := make([]float32, 3*320*320)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img, _, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		Preprocess(img, 320, "detect", dst)
	}
}
func BenchmarkNoise320(b *testing.B)  { benchDecode(b, "/tmp/dev/noise320.jpg") }
func BenchmarkShapes320(b *testing.B) { benchDecode(b, "/tmp/dev/shapes320.jpg") }
func BenchmarkShapes640(b *testing.B) { benchDecode(b, "/tmp/dev/shapes640.jpg") }
