package yolo

import (
	"math"
	"sync"
)

// PadValue is the grey of letterbox padding (Ultralytics' value).
const PadValue = 114

// resized holds the letterbox's resized pixels between requests: a few hundred KB each, which the garbage
// collector would otherwise reclaim on the engine's CPU
var resized = sync.Pool{New: func() any { return new([]uint8) }}

// Placement says how one image was placed in the square model input, to scale answers back.
type Placement struct {
	Width, Height int // the original image
	GainX, GainY  float64
	PadX, PadY    int
	NewW, NewH    int
}

// LetterboxPlacement is engines.processing.letterbox_params: aspect kept, centred, Python's rounding.
func LetterboxPlacement(height, width, imgsz int) Placement {
	r := math.Min(float64(imgsz)/float64(height), float64(imgsz)/float64(width))
	newW := max(int(math.RoundToEven(float64(width)*r)), 1)
	newH := max(int(math.RoundToEven(float64(height)*r)), 1)
	dw, dh := float64(imgsz-newW)/2, float64(imgsz-newH)/2
	return Placement{Width: width, Height: height, GainX: float64(newW) / float64(width),
		GainY: float64(newH) / float64(height), PadX: int(math.RoundToEven(dw - 0.1)),
		PadY: int(math.RoundToEven(dh - 0.1)), NewW: newW, NewH: newH}
}

// Letterbox resizes (OpenCV bilinear) and pads an image to imgsz x imgsz.
func Letterbox(img *RGB, imgsz int) (*RGB, Placement) {
	p := LetterboxPlacement(img.Height, img.Width, imgsz)
	if p.NewW != img.Width || p.NewH != img.Height {
		img = ResizeLinear(img, p.NewW, p.NewH)
	}
	out := &RGB{Width: imgsz, Height: imgsz, Pix: make([]uint8, imgsz*imgsz*3)}
	for i := range out.Pix {
		out.Pix[i] = PadValue
	}
	for y := 0; y < p.NewH; y++ {
		copy(out.Pix[((y+p.PadY)*imgsz+p.PadX)*3:], img.Pix[y*p.NewW*3:(y+1)*p.NewW*3])
	}
	return out, p
}

// CenterCrop is Ultralytics' classify transform: short side to imgsz (PIL bilinear), then the centre square.
func CenterCrop(img *RGB, imgsz int) *RGB { return centerCrop(Whole(img), imgsz) }

// centerCrop is CenterCrop of a frame: sizes are the original's, the resize starts from the decoded pixels.
func centerCrop(f Frame, imgsz int) *RGB {
	w, h := f.Width, f.Height
	var newW, newH int
	if w <= h {
		newW, newH = imgsz, int(float64(imgsz)*float64(h)/float64(w))
	} else {
		newW, newH = int(float64(imgsz)*float64(w)/float64(h)), imgsz
	}
	resized := f.Pixels
	if newW != resized.Width || newH != resized.Height {
		resized = ResizePILBilinear(resized, newW, newH)
	}
	top := int(math.RoundToEven(float64(newH-imgsz) / 2))
	left := int(math.RoundToEven(float64(newW-imgsz) / 2))
	out := &RGB{Width: imgsz, Height: imgsz, Pix: make([]uint8, imgsz*imgsz*3)}
	for y := 0; y < imgsz; y++ {
		copy(out.Pix[y*imgsz*3:(y+1)*imgsz*3], resized.Pix[((top+y)*newW+left)*3:])
	}
	return out
}

// Preprocess places one image for the model and writes it as CHW float32 in [0, 1] into dst
// (len 3*imgsz*imgsz), returning where it was placed.
func Preprocess(img *RGB, imgsz int, task string, dst []float32) Placement {
	return PreprocessFrame(Whole(img), imgsz, task, dst)
}

// PreprocessFrame is Preprocess of a frame (perhaps decoded reduced): the placement is the original's. The
// letterbox is written straight into dst: the resized pixels and the padding, no padded image between.
func PreprocessFrame(f Frame, imgsz int, task string, dst []float32) Placement {
	plane := imgsz * imgsz
	const scale = float32(1.0 / 255.0)
	if task == "classify" {
		placed := centerCrop(f, imgsz)
		for i := 0; i < plane; i++ {
			dst[i] = float32(placed.Pix[3*i]) * scale
			dst[plane+i] = float32(placed.Pix[3*i+1]) * scale
			dst[2*plane+i] = float32(placed.Pix[3*i+2]) * scale
		}
		return Placement{Width: f.Width, Height: f.Height, GainX: 1, GainY: 1, NewW: imgsz, NewH: imgsz}
	}
	p := LetterboxPlacement(f.Height, f.Width, imgsz)
	img := f.Pixels
	if p.NewW != img.Width || p.NewH != img.Height {
		buf := resized.Get().(*[]uint8)
		defer resized.Put(buf)
		img = ResizeLinearInto(img, p.NewW, p.NewH, *buf)
		*buf = img.Pix
	}
	pad := float32(PadValue) * scale
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for y := 0; y < imgsz; y++ {
		row := y * imgsz
		sy := y - p.PadY
		if sy < 0 || sy >= p.NewH {
			for x := row; x < row+imgsz; x++ {
				r[x], g[x], b[x] = pad, pad, pad
			}
			continue
		}
		for x := row; x < row+p.PadX; x++ {
			r[x], g[x], b[x] = pad, pad, pad
		}
		src := img.Pix[sy*p.NewW*3 : (sy+1)*p.NewW*3]
		out := row + p.PadX
		rr, gg, bb := r[out:out+p.NewW], g[out:out+p.NewW], b[out:out+p.NewW]
		for i := range rr {
			px := src[3*i : 3*i+3]
			rr[i], gg[i], bb[i] = float32(px[0])*scale, float32(px[1])*scale, float32(px[2])*scale
		}
		for x := row + p.PadX + p.NewW; x < row+imgsz; x++ {
			r[x], g[x], b[x] = pad, pad, pad
		}
	}
	return p
}
