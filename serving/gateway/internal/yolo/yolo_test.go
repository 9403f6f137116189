package yolo

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"testing"
)

// testdata/resize_golden.json is written by scripts/make_gateway_golden.py from OpenCV, PIL and
// engines/processing.py.
type golden struct {
	Width, Height int
	Pixels        []uint8
	Resized       []struct {
		Width, Height int
		Pixels        []uint8
	}
	Letterbox []struct {
		Imgsz  int
		Pixels []uint8
		PadX   int `json:"pad_x"`
		PadY   int `json:"pad_y"`
		NewW   int `json:"new_w"`
		NewH   int `json:"new_h"`
	}
	Crop []struct {
		Imgsz  int
		Pixels []uint8
	}
}

func loadGolden(t *testing.T) []golden {
	var cases []golden
	readTestdata(t, "resize_golden.json", &cases)
	return cases
}

// readTestdata decodes testdata/name (JSON) into v.
func readTestdata(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("testdata/%s: %v", name, err)
	}
}

func diff(t *testing.T, what string, got, want []uint8) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: value %d is %d, OpenCV/PIL give %d", what, i, got[i], want[i])
		}
	}
}

func TestResizeLinearEqualsOpenCVByteForByte(t *testing.T) {
	for _, c := range loadGolden(t) {
		img := &RGB{Width: c.Width, Height: c.Height, Pix: c.Pixels}
		for _, r := range c.Resized {
			diff(t, "resize", ResizeLinear(img, r.Width, r.Height).Pix, r.Pixels)
		}
	}
}

func TestLetterboxEqualsThePythonSide(t *testing.T) {
	for _, c := range loadGolden(t) {
		img := &RGB{Width: c.Width, Height: c.Height, Pix: c.Pixels}
		for _, l := range c.Letterbox {
			out, p := Letterbox(img, l.Imgsz)
			if p.PadX != l.PadX || p.PadY != l.PadY || p.NewW != l.NewW || p.NewH != l.NewH {
				t.Fatalf("%dx%d at %d: placement %+v, want pad %d,%d size %dx%d", c.Width, c.Height, l.Imgsz, p,
					l.PadX, l.PadY, l.NewW, l.NewH)
			}
			diff(t, "letterbox", out.Pix, l.Pixels)
		}
	}
}

func TestCenterCropEqualsUltralyticsClassifyTransform(t *testing.T) {
	for _, c := range loadGolden(t) {
		img := &RGB{Width: c.Width, Height: c.Height, Pix: c.Pixels}
		for _, cr := range c.Crop {
			diff(t, "crop", CenterCrop(img, cr.Imgsz).Pix, cr.Pixels)
		}
	}
}

func TestPreprocessWritesPlanarFloatsInUnitRange(t *testing.T) {
	img := &RGB{Width: 2, Height: 2, Pix: []uint8{255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0}}
	dst := make([]float32, 3*2*2)
	Preprocess(img, 2, "detect", dst)
	for i := 0; i < 4; i++ {
		if dst[i] != 1 || dst[4+i] != 0 || dst[8+i] != 0 {
			t.Fatalf("planes = %v", dst)
		}
	}
}

func TestNMSKeepsTheBestOfOverlappingBoxes(t *testing.T) {
	boxes := [][4]float64{{0, 0, 10, 10}, {1, 1, 11, 11}, {20, 20, 30, 30}, {0, 0, 10, 10.5}}
	scores := []float64{0.8, 0.9, 0.5, 0.3}
	keep := NMS(boxes, scores, 0.5, 10)
	if len(keep) != 2 || keep[0] != 1 || keep[1] != 2 {
		t.Fatalf("keep = %v, want [1 2]", keep)
	}
	if got := NMS(boxes, scores, 0.5, 1); len(got) != 1 {
		t.Fatalf("max_det ignored: %v", got)
	}
}

func TestIoUOfKnownBoxes(t *testing.T) {
	if got := IoU([4]float64{0, 0, 2, 2}, [4]float64{1, 1, 3, 3}); math.Abs(got-1.0/7) > 1e-6 {
		t.Fatalf("IoU = %v, want 1/7", got)
	}
	if got := IoU([4]float64{0, 0, 1, 1}, [4]float64{2, 2, 3, 3}); got != 0 {
		t.Fatalf("disjoint IoU = %v", got)
	}
}

// rawDetect builds a (4+nc, n) output from anchors given as cx, cy, w, h, class scores.
func rawDetect(nc int, anchors [][]float32) Output {
	n := len(anchors)
	data := make([]float32, (4+nc)*n)
	for a, v := range anchors {
		for r := range v {
			data[r*n+a] = v[r]
		}
	}
	return Output{Shape: []int64{int64(4 + nc), int64(n)}, Data: data}
}

func TestDetectionsAreScaledBackToTheOriginalImage(t *testing.T) {
	m := Model{Task: "detect", Names: []string{"a", "b"}, Imgsz: 64}
	out := rawDetect(2, [][]float32{{32, 32, 20, 10, 0.1, 0.9}, {10, 10, 4, 4, 0.2, 0.1}})
	p := LetterboxPlacement(64, 128, 64) // a 128x64 image: scale 0.5, 16 px of padding above and below
	res, err := Postprocess(m, []Output{out}, p, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Detections) != 1 {
		t.Fatalf("detections = %+v, want one above conf 0.25", res.Detections)
	}
	d := res.Detections[0]
	want := [4]float64{44, 22, 84, 42}
	for i := range want {
		if math.Abs(d.Box[i]-want[i]) > 1e-4 {
			t.Fatalf("box = %v, want %v", d.Box, want)
		}
	}
	if d.ClassID != 1 || d.ClassName != "b" || math.Abs(d.Confidence-0.9) > 1e-6 {
		t.Fatalf("detection = %+v", d)
	}
}

func TestWrongOutputShapeIsAnErrorNotAPanic(t *testing.T) {
	m := Model{Task: "detect", Names: []string{"a", "b", "c"}, Imgsz: 64}
	out := rawDetect(2, [][]float32{{1, 1, 1, 1, 1, 1}})
	if _, err := Postprocess(m, []Output{out}, Placement{}, DefaultOptions()); err == nil {
		t.Fatal("want an error for 2 class rows when the model has 3 names")
	}
}

func TestTopKIsSortedByConfidence(t *testing.T) {
	m := Model{Task: "classify", Names: []string{"a", "b", "c"}, Imgsz: 32}
	res, err := Postprocess(m, []Output{{Shape: []int64{3}, Data: []float32{0.2, 0.7, 0.1}}}, Placement{},
		Options{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Top) != 2 || res.Top[0].ClassName != "b" || res.Top[1].ClassName != "a" {
		t.Fatalf("top = %+v", res.Top)
	}
}

func TestPolygonOfARectangleIsItsFourCorners(t *testing.T) {
	w, h := 10, 8
	mask := make([]bool, w*h)
	for y := 2; y <= 5; y++ {
		for x := 3; x <= 7; x++ {
			mask[y*w+x] = true
		}
	}
	mask[0] = true // a smaller region elsewhere is not the outline
	got := Polygon(mask, w, h)
	want := map[[2]float64]bool{{3, 2}: true, {7, 2}: true, {7, 5}: true, {3, 5}: true}
	if len(got) != 4 {
		t.Fatalf("polygon = %v, want the 4 corners", got)
	}
	for _, p := range got {
		if !want[p] {
			t.Fatalf("polygon = %v, want the corners %v", got, want)
		}
	}
}

func TestPolygonIsTheLargestRegionNotTheRaggedestOne(t *testing.T) {
	// a ragged fragment (a staircase: many border points, little area) above a plain square (4 points, more area)
	w, h := 24, 24
	mask := make([]bool, w*h)
	for i := 0; i < 10; i++ {
		mask[1*w+2+i] = true
		mask[(2+i%2)*w+2+i] = true
	}
	for y := 10; y < 22; y++ {
		for x := 6; x < 18; x++ {
			mask[y*w+x] = true
		}
	}
	got := Polygon(mask, w, h)
	if len(got) != 4 || enclosedArea(got) != 121 {
		t.Fatalf("polygon = %v (area %v), want the square's 4 corners", got, enclosedArea(got))
	}
}

func TestDecodeReadsPNGAndRefusesGarbage(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	img.Set(1, 1, color.NRGBA{10, 20, 30, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	rgb, format, err := Decode(buf.Bytes())
	if err != nil || format != "png" || rgb.Width != 3 || rgb.Height != 2 {
		t.Fatalf("Decode = %v %q %v", rgb, format, err)
	}
	if px := rgb.Pix[(1*3+1)*3:][:3]; px[0] != 10 || px[1] != 20 || px[2] != 30 {
		t.Fatalf("pixel = %v", px)
	}
	if _, _, err := Decode([]byte("\xff\xd8\xff\xe0 not a jpeg")); err == nil {
		t.Fatal("garbage decoded")
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4)))
	f.Add(buf.Bytes())
	f.Add([]byte("\xff\xd8\xff\xe0\x00\x10JFIF"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, _, err := Decode(data)
		if err != nil {
			return
		}
		if img.Width <= 0 || img.Height <= 0 || len(img.Pix) != img.Width*img.Height*3 {
			t.Fatalf("decoded %dx%d with %d bytes", img.Width, img.Height, len(img.Pix))
		}
		dst := make([]float32, 3*32*32)
		Preprocess(img, 32, "detect", dst) // whatever decodes must also pre-process
	})
}

func TestJPEGColoursEqualTheStandardLibrarysConversion(t *testing.T) {
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411} {
		src := image.NewYCbCr(image.Rect(0, 0, 13, 7), ratio)
		for i := range src.Y {
			src.Y[i] = uint8(i * 37)
		}
		for i := range src.Cb {
			src.Cb[i], src.Cr[i] = uint8(i*53+7), uint8(255-i*29)
		}
		got := ToRGB(src)
		for y := 0; y < 7; y++ {
			for x := 0; x < 13; x++ {
				c := color.RGBAModel.Convert(src.At(x, y)).(color.RGBA)
				p := got.Pix[(y*13+x)*3:]
				if p[0] != c.R || p[1] != c.G || p[2] != c.B {
					t.Fatalf("%v at %d,%d: %v, want %v", ratio, x, y, p[:3], c)
				}
			}
		}
	}
}

func TestPreprocessWritesTheLetterboxStraightIntoTheTensor(t *testing.T) {
	for _, c := range loadGolden(t) {
		img := &RGB{Width: c.Width, Height: c.Height, Pix: c.Pixels}
		for _, l := range c.Letterbox {
			boxed, _ := Letterbox(img, l.Imgsz)
			plane := l.Imgsz * l.Imgsz
			got := make([]float32, 3*plane)
			Preprocess(img, l.Imgsz, "detect", got)
			for i := 0; i < plane; i++ {
				for ch := 0; ch < 3; ch++ {
					if want := float32(boxed.Pix[3*i+ch]) * float32(1.0/255.0); got[ch*plane+i] != want {
						t.Fatalf("%dx%d at %d: channel %d pixel %d is %v, the letterbox gives %v", c.Width, c.Height,
							l.Imgsz, ch, i, got[ch*plane+i], want)
					}
				}
			}
		}
	}
}

func jpegOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 3), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAJPEGTheModelHalvesIsDecodedAtHalfAndPlacedAsTheOriginal(t *testing.T) {
	frame, format, err := DecodeFor(jpegOf(t, 1280, 720), 640, "detect", nil)
	if err != nil || format != "jpeg" {
		t.Fatal(format, err)
	}
	if frame.Width != 1280 || frame.Height != 720 || frame.Pixels.Width != 640 || frame.Pixels.Height != 360 {
		t.Fatalf("frame %dx%d decoded at %dx%d, want 1280x720 at 640x360 (1/2)", frame.Width, frame.Height,
			frame.Pixels.Width, frame.Pixels.Height)
	}
	p := PreprocessFrame(frame, 640, "detect", make([]float32, 3*640*640))
	if p.Width != 1280 || p.GainX != 0.5 || p.NewW != 640 || p.NewH != 360 || p.PadY != 140 {
		t.Fatalf("placement %+v is not the original's", p)
	}
	whole, _, err := DecodeFor(jpegOf(t, 1280, 720), 320, "detect", nil) // a quarter: decoded whole (boxes would move)
	if err != nil || whole.Pixels.Width != 1280 {
		t.Fatalf("decoded at %d px wide (%v), want whole", whole.Pixels.Width, err)
	}
}

// testdata/decode_size_golden.json is engines/processing.py's resized_size and jpeg_reduction (the Python side's
// decode_for_model): both servers decode a JPEG at the same reduction, so to the same pixels.
func TestTheReductionAJPEGIsDecodedAtIsThePythonSides(t *testing.T) {
	var cases []struct {
		Width, Height, Imgsz int
		Task                 string
		NeedW                int `json:"need_w"`
		NeedH                int `json:"need_h"`
		Denom                int
	}
	readTestdata(t, "decode_size_golden.json", &cases)
	for _, c := range cases {
		if w, h := NeededSize(c.Width, c.Height, c.Imgsz, c.Task); w != c.NeedW || h != c.NeedH {
			t.Fatalf("%+v: needs %dx%d", c, w, h)
		}
		if d := JPEGReduction(c.Width, c.Height, c.Imgsz, c.Task); d != c.Denom {
			t.Fatalf("%+v: reduction %d", c, d)
		}
	}
}

// greedyNMS is the textbook form: keep the best box, drop every box it overlaps, repeat.
func greedyNMS(boxes [][4]float64, scores []float64, iou float64, maxKeep int) []int {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return scores[order[i]] > scores[order[j]] })
	var keep []int
	for len(order) > 0 && len(keep) < maxKeep {
		best := order[0]
		keep = append(keep, best)
		var rest []int
		for _, j := range order[1:] {
			if IoU(boxes[best], boxes[j]) <= iou {
				rest = append(rest, j)
			}
		}
		order = rest
	}
	return keep
}

func TestNMSKeepsWhatTheTextbookGreedySuppressionKeeps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(300)
		boxes, scores := make([][4]float64, n), make([]float64, n)
		for i := range boxes { // clustered, so that suppression has work to do
			cx, cy := float64(rng.IntN(5))*40+rng.NormFloat64()*4, float64(rng.IntN(5))*40+rng.NormFloat64()*4
			w, h := 10+rng.Float64()*30, 10+rng.Float64()*30
			boxes[i] = [4]float64{cx - w/2, cy - h/2, cx + w/2, cy + h/2}
			scores[i] = float64(rng.IntN(50)) / 50 // ties too
		}
		iou, maxKeep := 0.3+rng.Float64()*0.5, 1+rng.IntN(40)
		got, want := NMS(boxes, scores, iou, maxKeep), greedyNMS(boxes, scores, iou, maxKeep)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: kept %v, greedy suppression keeps %v", trial, got, want)
		}
	}
}

// BenchmarkPostprocessWeakModel: a barely trained detector at 640 px, 8400 anchors and 80 classes, every anchor
// a scattered candidate above the threshold.
func BenchmarkPostprocessWeakModel(b *testing.B) {
	const n, nc = 8400, 80
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]float32, (4+nc)*n)
	for a := 0; a < n; a++ {
		data[a], data[n+a] = rng.Float32()*640, rng.Float32()*640
		data[2*n+a], data[3*n+a] = 5+rng.Float32()*20, 5+rng.Float32()*20
		for c := 0; c < nc; c++ {
			data[(4+c)*n+a] = 0.26 + rng.Float32()*0.1
		}
	}
	names := make([]string, nc)
	m := Model{Task: "detect", Names: names, Imgsz: 640}
	out := []Output{{Shape: []int64{4 + nc, n}, Data: data}}
	p := LetterboxPlacement(640, 640, 640)
	for b.Loop() {
		if _, err := Postprocess(m, out, p, DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
}
