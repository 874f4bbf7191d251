package twiliotest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "f00dfacecafebabe5ec4e7700dd5e1c7"
)

type reply struct {
	status int
	ctype  string
	json   map[string]any
	raw    string
}

func post(t *testing.T, base, path, user, pass string, form url.Values) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), raw: string(b)}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func messagesPath(account string) string { return "/2010-04-01/Accounts/" + account + "/Messages.json" }

func validForm() url.Values {
	return url.Values{"To": {"+919876543210"}, "From": {"+15005550006"}, "Body": {"123456 is your code"}}
}

func TestRequests(t *testing.T) {
	f := New(sid, token)
	defer f.Close()

	tests := []struct {
		name       string
		path       string
		user, pass string
		form       url.Values
		wantStatus int
		wantCode   int
	}{
		{"no auth", messagesPath(sid), "", "", validForm(), 401, 20003},
		{"wrong token", messagesPath(sid), sid, "nope", validForm(), 401, 20003},
		{"wrong user", messagesPath(sid), "AC000", token, validForm(), 401, 20003},
		{"empty account in path", messagesPath(""), sid, token, validForm(), 404, 20404},
		{"other account in path", messagesPath("AC999"), sid, token, validForm(), 404, 20404},
		{"other resource", "/2010-04-01/Accounts/" + sid + "/Calls.json", sid, token, validForm(), 404, 20404},
		{"missing to", messagesPath(sid), sid, token, url.Values{"From": {"+15005550006"}, "Body": {"x"}}, 400, 21604},
		{"bad to", messagesPath(sid), sid, token, url.Values{"To": {"98765"}, "From": {"+15005550006"}, "Body": {"x"}}, 400, 21211},
		{"no sender", messagesPath(sid), sid, token, url.Values{"To": {"+919876543210"}, "Body": {"x"}}, 400, 21603},
		{"no body", messagesPath(sid), sid, token, url.Values{"To": {"+919876543210"}, "From": {"+15005550006"}}, 400, 21602},
		{"accepted", messagesPath(sid), sid, token, validForm(), 201, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, f.URL(), tt.path, tt.user, tt.pass, tt.form)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.raw)
			}
			if !strings.HasPrefix(r.ctype, "application/json") {
				t.Errorf("content type %q", r.ctype)
			}
			if tt.wantCode != 0 {
				if code, _ := r.json["code"].(float64); int(code) != tt.wantCode {
					t.Errorf("code %v, want %d: %s", r.json["code"], tt.wantCode, r.raw)
				}
				if st, _ := r.json["status"].(float64); int(st) != tt.wantStatus {
					t.Errorf("body status %v, want %d", r.json["status"], tt.wantStatus)
				}
			}
		})
	}

	msgs := f.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.AccountSID != sid || m.To != "+919876543210" || m.From != "+15005550006" || m.Body != "123456 is your code" || len(m.SID) != 34 {
		t.Errorf("recorded %+v", m)
	}
	// Validation failures reached the endpoint and count as requests;
	// unauthenticated and wrong-path ones do not.
	if n := len(f.Requests()); n != 5 {
		t.Errorf("%d requests recorded, want 5", n)
	}
}

func TestMethodAndContentType(t *testing.T) {
	f := New(sid, token)
	defer f.Close()

	req, _ := http.NewRequest(http.MethodGet, f.URL()+messagesPath(sid), nil)
	req.SetBasicAuth(sid, token)
	if r := do(t, req); r.status != 405 {
		t.Errorf("GET: status %d", r.status)
	}
	req, _ = http.NewRequest(http.MethodPost, f.URL()+messagesPath(sid), strings.NewReader(`{"To":"+919876543210"}`))
	req.SetBasicAuth(sid, token)
	req.Header.Set("Content-Type", "application/json")
	if r := do(t, req); r.status != 400 {
		t.Errorf("JSON body: status %d", r.status)
	}
}

func TestAcceptedResource(t *testing.T) {
	f := New(sid, token)
	defer f.Close()

	r := post(t, f.URL(), messagesPath(sid), sid, token, validForm())
	for key, want := range map[string]any{
		"status": "queued", "to": "+919876543210", "from": "+15005550006", "account_sid": sid,
		"direction": "outbound-api", "api_version": "2010-04-01", "error_code": nil,
	} {
		if r.json[key] != want {
			t.Errorf("%s = %v, want %v", key, r.json[key], want)
		}
	}
	if s, _ := r.json["sid"].(string); !strings.HasPrefix(s, "SM") {
		t.Errorf("sid %q", s)
	}
	if _, err := time.Parse(time.RFC1123Z, r.json["date_created"].(string)); err != nil {
		t.Errorf("date_created: %v", err)
	}

	form := url.Values{"To": {"+919876543210"}, "MessagingServiceSid": {"MG1"}, "Body": {"x"}}
	r = post(t, f.URL(), messagesPath(sid), sid, token, form)
	if r.status != 201 || r.json["status"] != "accepted" || r.json["from"] != nil || r.json["messaging_service_sid"] != "MG1" {
		t.Errorf("messaging service reply: %d %s", r.status, r.raw)
	}
}

func TestScriptedFailures(t *testing.T) {
	f := New(sid, token)
	defer f.Close()

	f.FailNext(1, 429, 20429)
	f.FailNext(1, 502, 0)
	f.FailTo("+919999999999", 400, 21610)

	r := post(t, f.URL(), messagesPath(sid), sid, token, validForm())
	if r.status != 429 || r.json["code"] != float64(20429) {
		t.Errorf("first: %d %s", r.status, r.raw)
	}
	r = post(t, f.URL(), messagesPath(sid), sid, token, validForm())
	if r.status != 502 || r.json != nil {
		t.Errorf("second: want 502 with a non-JSON body, got %d %q", r.status, r.raw)
	}
	if r = post(t, f.URL(), messagesPath(sid), sid, token, validForm()); r.status != 201 {
		t.Errorf("third: %d", r.status)
	}
	unsub := url.Values{"To": {"+919999999999"}, "From": {"+15005550006"}, "Body": {"x"}}
	for range 2 {
		if r = post(t, f.URL(), messagesPath(sid), sid, token, unsub); r.status != 400 || r.json["code"] != float64(21610) {
			t.Errorf("FailTo: %d %s", r.status, r.raw)
		}
	}
	f.FailTo("+919999999999", 0, 0)
	if r = post(t, f.URL(), messagesPath(sid), sid, token, unsub); r.status != 201 {
		t.Errorf("after removing FailTo: %d", r.status)
	}

	reqs := f.Requests()
	want := []int{429, 502, 201, 400, 400, 201}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		if reqs[i].Status != w {
			t.Errorf("request %d status %d, want %d", i, reqs[i].Status, w)
		}
	}
	if n := len(f.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

func TestWaitMessages(t *testing.T) {
	f := New(sid, token)
	defer f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.WaitMessages(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitMessages on an empty fake: %v", err)
	}

	done := make(chan []Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		msgs, err := f.WaitMessages(ctx, 2)
		if err != nil {
			t.Error(err)
		}
		done <- msgs
	}()
	for range 2 {
		post(t, f.URL(), messagesPath(sid), sid, token, validForm())
	}
	if msgs := <-done; len(msgs) != 2 {
		t.Errorf("WaitMessages returned %d messages, want 2", len(msgs))
	}
}

func TestLatencyReleasedByClose(t *testing.T) {
	f := New(sid, token)
	f.SetLatency(time.Hour)
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+messagesPath(sid), strings.NewReader(validForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(sid, token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the request reach the handler
	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a delayed request")
	}
	<-errc
	if n := len(f.Messages()); n != 0 {
		t.Errorf("%d messages accepted after close", n)
	}
	f.Close() // idempotent
}

func TestUnstarted(t *testing.T) {
	f := NewUnstarted(sid, token)
	defer f.Close()
	if f.URL() != "" {
		t.Errorf("URL() = %q for an unstarted fake", f.URL())
	}
	var _ http.Handler = f
}
