package jpegturbo

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testdata/decode_golden.json is OpenCV's decoding of testdata/frame.jpg (scripts/make_gateway_golden.py).
func TestDecodeGivesOpenCVsPixelsWholeAndReduced(t *testing.T) {
	var cases []struct {
		Denom, Width, Height int
		Pixels               []uint8
	}
	if err := json.Unmarshal(readFile(t, "decode_golden.json"), &cases); err != nil {
		t.Fatal(err)
	}
	frame := readFile(t, "frame.jpg")
	for _, c := range cases {
		pix, w, h, err := Decode(frame, Scale{1, c.Denom}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w != c.Width || h != c.Height {
			t.Fatalf("1/%d: %dx%d, OpenCV gives %dx%d", c.Denom, w, h, c.Width, c.Height)
		}
		for i := range pix {
			if pix[i] != c.Pixels[i] {
				t.Fatalf("1/%d: value %d is %d, OpenCV gives %d", c.Denom, i, pix[i], c.Pixels[i])
			}
		}
	}
}

func TestTruncatedOrForeignDataIsRefused(t *testing.T) {
	frame := readFile(t, "frame.jpg")
	for name, data := range map[string][]byte{"truncated": frame[:len(frame)/2], "png": []byte("\x89PNG\r\n\x1a\n"),
		"empty": nil, "header only": frame[:20]} {
		if _, _, _, err := Decode(data, Scale{1, 1}, nil); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", name, err)
		}
	}
}

func TestACMYKJPEGIsSaidToBeCMYKAndNotDecoded(t *testing.T) {
	data := readFile(t, "cmyk.jpg")
	hdr, err := ReadHeader(data)
	if err != nil || !hdr.CMYK || hdr.Width != 20 || hdr.Height != 12 {
		t.Fatalf("header %+v, %v", hdr, err)
	}
	if _, _, _, err := Decode(data, Scale{1, 1}, nil); !errors.Is(err, ErrDecode) {
		t.Fatalf("%v, want ErrDecode", err)
	}
}

func TestTheBufferGivenIsUsedWhenLargeEnough(t *testing.T) {
	frame := readFile(t, "frame.jpg")
	buf := make([]byte, 0, 1<<20)
	pix, _, _, err := Decode(frame, Scale{1, 2}, buf)
	if err != nil || &pix[0] != &buf[:1][0] {
		t.Fatalf("a new buffer was allocated (%v)", err)
	}
}
