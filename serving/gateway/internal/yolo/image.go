// Package yolo holds the model-side pure functions of the server: image decoding, letterbox and centre-crop
// pre-processing, and the post-processing (NMS, masks, polygons, top-k) that turns raw outputs into answers.
// Each function mirrors engines/processing.py so both servers give the same answers for the same image.
package yolo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the decoders image.Decode uses
	_ "image/png"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/jpegturbo"
	_ "golang.org/x/image/webp"
)

// MaxPixels bounds width*height before decoding, so a small file that claims a huge canvas is refused early.
const MaxPixels = 50_000_000

// ErrBadImage wraps every decoding failure: the HTTP layer answers 400 bad_image for it.
var ErrBadImage = errors.New("bad image")

// RGB is an 8-bit, 3-channel image, rows of R,G,B bytes (HWC), as numpy arrays are on the Python side.
type RGB struct {
	Width, Height int
	Pix           []uint8
}

// Frame is a decoded image: its pixels, perhaps decoded reduced (a JPEG much larger than the model's input: see
// DecodeFor), and the size of the original, which placements and answers are in.
type Frame struct {
	Pixels        *RGB
	Width, Height int
}

// Whole is an image decoded at its own size.
func Whole(img *RGB) Frame { return Frame{Pixels: img, Width: img.Width, Height: img.Height} }

// Decode reads a JPEG, PNG or WEBP image into RGB at its own size. Alpha is dropped, not blended, as PIL's
// convert("RGB") does.
func Decode(data []byte) (*RGB, string, error) {
	f, format, err := decode(data, func(int, int) int { return 1 }, nil)
	return f.Pixels, format, err
}

// DecodeFor reads an image for a model of this input size and task. A JPEG is decoded by libjpeg-turbo, at half
// its size in the DCT where the model's resize halves it (JPEGReduction), else whole, into buf where it is large
// enough (a caller's pooled buffer; nil: a new one).
func DecodeFor(data []byte, imgsz int, task string, buf []byte) (Frame, string, error) {
	return decode(data, func(w, h int) int { return JPEGReduction(w, h, imgsz, task) }, buf)
}

// NeededSize is the size (width, height) an image of width x height is resized to for the model: the letterbox's
// (aspect kept, long side imgsz) or the classify transform's (short side imgsz).
func NeededSize(width, height, imgsz int, task string) (int, int) {
	if task == "classify" {
		if width <= height {
			return imgsz, int(float64(imgsz) * float64(height) / float64(width))
		}
		return int(float64(imgsz) * float64(width) / float64(height)), imgsz
	}
	p := LetterboxPlacement(height, width, imgsz)
	return p.NewW, p.NewH
}

// JPEGReduction is the DCT reduction (1 or 2) a width x height JPEG is decoded at for the model: 2 only where the
// model's resize halves it (the half-size decode within a pixel of what the resize keeps). OpenCV's bilinear
// halving is a 2x2 average, as the DCT's 1/2 nearly is, so Ultralytics' boxes hold; at 1/4 OpenCV averages 2 of
// every 4 pixels where the DCT averages all 4, and boxes move, so such an image is decoded whole
// (engines.processing.jpeg_reduction, the same rule, gives the figures; golden vectors keep the two equal).
func JPEGReduction(width, height, imgsz int, task string) int {
	needW, needH := NeededSize(width, height, imgsz, task)
	halfW, halfH := (width+1)/2, (height+1)/2
	if needW <= halfW && halfW <= needW+1 && needH <= halfH && halfH <= needH+1 {
		return 2
	}
	return 1
}

func decode(data []byte, reduction func(width, height int) int, buf []byte) (Frame, string, error) {
	if hdr, err := jpegturbo.ReadHeader(data); err == nil && !hdr.CMYK { // CMYK: the standard library converts it
		if err := checkSize(hdr.Width, hdr.Height, "jpeg"); err != nil {
			return Frame{}, "", err
		}
		scale := jpegturbo.Scale{Num: 1, Denom: reduction(hdr.Width, hdr.Height)}
		pix, w, h, err := jpegturbo.Decode(data, scale, buf)
		if err != nil {
			return Frame{}, "", fmt.Errorf("%w: the jpeg data is damaged (%v)", ErrBadImage, err)
		}
		return Frame{Pixels: &RGB{Width: w, Height: h, Pix: pix}, Width: hdr.Width, Height: hdr.Height}, "jpeg", nil
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Frame{}, "", fmt.Errorf("%w: not a JPEG, PNG or WEBP image (%v)", ErrBadImage, err)
	}
	if err := checkSize(cfg.Width, cfg.Height, format); err != nil {
		return Frame{}, "", err
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return Frame{}, "", fmt.Errorf("%w: the %s data is damaged (%v)", ErrBadImage, format, err)
	}
	return Whole(ToRGB(img)), format, nil
}

func checkSize(width, height int, format string) error {
	if width <= 0 || height <= 0 {
		return fmt.Errorf("%w: %s image has no pixels (%dx%d)", ErrBadImage, format, width, height)
	}
	if int64(width)*int64(height) > MaxPixels {
		return fmt.Errorf("%w: %dx%d is over the %d-pixel limit", ErrBadImage, width, height, MaxPixels)
	}
	return nil
}

// ToRGB converts any decoded image to RGB, with fast paths for what the decoders return.
func ToRGB(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &RGB{Width: w, Height: h, Pix: make([]uint8, w*h*3)}
	switch src := img.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[(y)*src.Stride:]
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.YCbCr: // JPEG: chroma subsampling and the colour transform inlined (a third of decode time)
		sx := chromaShiftX(src.SubsampleRatio)
		for y := 0; y < h; y++ {
			yrow := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
			cbase := src.COffset(b.Min.X, b.Min.Y+y)
			cb, cr := src.Cb[cbase:], src.Cr[cbase:]
			dst := out.Pix[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				ci := (b.Min.X+x)>>sx - b.Min.X>>sx
				dst[3*x], dst[3*x+1], dst[3*x+2] = ycbcrToRGB(yrow[x], cb[ci], cr[ci])
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride:]
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride:]
			dst := out.Pix[y*w*3:]
			for x := 0; x < w; x++ {
				v := row[x]
				dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return out
}

// chromaShiftX is how many bits x shifts to index the chroma planes (COffset handles rows).
func chromaShiftX(r image.YCbCrSubsampleRatio) int {
	switch r {
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		return 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		return 2
	default:
		return 0
	}
}

// ycbcrToRGB is color.YCbCrToRGB, small enough to be inlined in the pixel loop.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y) * 0x10101
	cb1, cr1 := int32(cb)-128, int32(cr)-128
	r := yy + 91881*cr1
	g := yy - 22554*cb1 - 46802*cr1
	b := yy + 116130*cb1
	return clip16(r), clip16(g), clip16(b)
}

func clip16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}
