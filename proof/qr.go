package proof

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeImage reads JPEG
	_ "image/png"  // and PNG
	"io"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
)

// qrModulePixels is the size of one QR module in the PNG: a typical proof
// (version 11, 61 modules and a 4-module quiet zone each side) is 552 px
// square, large enough for a phone camera at arm's length.
const qrModulePixels = 8

// QRCode draws a proof text as a QR code at error correction level Q (25%
// of the symbol may be damaged), the level of the EU Digital COVID
// Certificate, and returns it as a black-on-white PNG with a quiet zone,
// 8 px per module. The text of a proof is all in QR's alphanumeric set. It
// fails only for a text too long for any QR code (about 2,400 characters at
// level Q).
func QRCode(text string) ([]byte, error) {
	// skip2's High is level Q: its formatInfo writes error correction bits
	// 0b11, which ISO/IEC 18004 assigns to Q (H is 0b10, its Highest).
	q, err := qrcode.New(text, qrcode.High)
	if err != nil {
		return nil, fmt.Errorf("proof: QR code: %w", err)
	}
	return q.PNG(-qrModulePixels)
}

// Limits on the images that DecodeImage reads.
const (
	maxImageBytes  = 10 << 20    // Telegram's photo limit
	maxImagePixels = 4096 * 4096 // a 12-megapixel phone photo fits; decoding takes 6 bytes a pixel
)

var (
	// ErrBadImage: not a PNG or JPEG image that can be read, or larger than
	// 10 MiB or 4096×4096 pixels.
	ErrBadImage = errors.New("not a readable PNG or JPEG image")
	// ErrNoQRCode: an image, but no QR code could be read in it.
	ErrNoQRCode = errors.New("no QR code found in the image")
)

// DecodeImage reads the QR code in a PNG or JPEG image (a photo or a
// screenshot will do) and returns its text, which is not checked: pass it to
// Verify. The errors are ErrBadImage and ErrNoQRCode, or the reader's own.
func DecodeImage(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxImageBytes {
		return "", fmt.Errorf("%w: over %d MiB", ErrBadImage, maxImageBytes>>20)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || (format != "png" && format != "jpeg") {
		return "", ErrBadImage
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return "", fmt.Errorf("%w: %dx%d pixels", ErrBadImage, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return "", ErrBadImage
	}
	// Light modules on a dark ground (a dark-mode screenshot) come second.
	// Each is tried turned a quarter at a time: gozxing takes a data
	// pattern for a finder or alignment pattern in about one code in a
	// hundred, even a perfect one that QRCode drew, and reads the same code
	// in another orientation.
	src := gozxing.NewLuminanceSourceFromImage(img)
	for _, src := range []gozxing.LuminanceSource{src, gozxing.NewInvertedLuminanceSource(src)} {
		for turn := range 4 {
			if turn > 0 {
				if src, err = src.RotateCounterClockwise(); err != nil {
					break
				}
			}
			if text, ok := readQR(src); ok {
				return text, nil
			}
		}
	}
	return "", ErrNoQRCode
}

// readQR decodes the QR code in src.
func readQR(src gozxing.LuminanceSource) (text string, ok bool) {
	// The image comes from anyone; a decoder bug on a strange one must not
	// take the process down.
	defer func() {
		if recover() != nil {
			text, ok = "", false
		}
	}()
	bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
	if err != nil {
		return "", false
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{
		gozxing.DecodeHintType_TRY_HARDER: true,
	})
	if err != nil {
		return "", false
	}
	return res.GetText(), true
}
