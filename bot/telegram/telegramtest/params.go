package telegramtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
)

// maxBody bounds a request body; Telegram's own upload limit is 50 MB.
const maxBody = 50 << 20

// params are a call's parameters, one value each, the way Telegram reads
// them: query string, form-encoded or multipart body (a file part reads as
// its file name), or a JSON object (non-string values as their JSON text).
type params map[string]string

func readParams(r *http.Request) (params, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	p := params{}
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			return p, fmt.Errorf("can't parse multipart body: %w", err)
		}
		defer r.MultipartForm.RemoveAll()
		for k, v := range r.MultipartForm.Value {
			p[k] = v[0]
		}
		for k, f := range r.MultipartForm.File {
			p[k] = f[0].Filename
			if data, err := readPart(f[0]); err == nil {
				p[fileKey+k] = data
			}
		}
	case "application/json":
		var obj map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
			return p, fmt.Errorf("can't parse JSON body: %w", err)
		}
		for k, raw := range obj {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				p[k] = s
			} else {
				p[k] = string(raw)
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			return p, fmt.Errorf("can't parse form body: %w", err)
		}
		for k, v := range r.PostForm {
			p[k] = v[0]
		}
	}
	return p, nil
}

// fileKey prefixes the parameter that holds an uploaded file's bytes
// (the parameter itself reads as the file name).
const fileKey = "\x00file:"

func readPart(fh *multipart.FileHeader) (string, error) {
	f, err := fh.Open()
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// present reports whether key carries a value; the library sends the
// literal "null" for nil slices and maps, which Telegram reads as absent.
func (p params) present(key string) bool {
	v, ok := p[key]
	return ok && v != "" && v != "null"
}

// int64 reads an integer parameter; missing reads as 0.
func (p params) int64(key string) (int64, error) {
	v := p[key]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %q must be an integer", key)
	}
	return n, nil
}

func (p params) int(key string) (int, error) {
	n, err := p.int64(key)
	return int(n), err
}

// bool reads a boolean the way Telegram does: "true"/"1" are true.
func (p params) bool(key string) bool {
	switch strings.ToLower(p[key]) {
	case "true", "1":
		return true
	}
	return false
}

// chatID reads chat_id. "@username" targets are not supported: the fake
// knows chats by id only, and answers "chat not found" like Telegram does
// for an unknown username.
func (p params) chatID() (int64, *apiError) {
	v := p["chat_id"]
	if v == "" {
		return 0, badRequest("chat_id is empty")
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id == 0 {
		return 0, badRequest("chat not found")
	}
	return id, nil
}

// messageID reads message_id.
func (p params) messageID() (int, *apiError) {
	if p["message_id"] == "" {
		return 0, badRequest("message identifier is not specified")
	}
	id, err := p.int("message_id")
	if err != nil || id <= 0 {
		return 0, badRequest("message identifier is not specified")
	}
	return id, nil
}

// rawJSON reads a nested JSON parameter; absent or "null" reads as nil.
func (p params) rawJSON(key string) (json.RawMessage, error) {
	if !p.present(key) {
		return nil, nil
	}
	v := p[key]
	if !json.Valid([]byte(v)) {
		return nil, errors.New("invalid JSON")
	}
	return json.RawMessage(v), nil
}
