// Package twiliotest is an in-process fake of the one part of the Twilio REST
// API that otpgate uses: creating an SMS with
// POST /2010-04-01/Accounts/{AccountSid}/Messages.json. It speaks the real
// wire format (Basic auth, form-encoded request, Twilio JSON replies and
// error bodies) so tests can drive the real twilio-go client against it, and
// it records every accepted message so a test — or a standalone fake process
// standing in for Twilio in an end-to-end run — can read the "phone".
//
// A Server is safe for concurrent use.
package twiliotest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// apiVersion is the only Twilio REST API version this fake implements.
const apiVersion = "2010-04-01"

// Message is one SMS the fake accepted. Body holds the full text, one-time
// code included: this is test data standing in for the handset.
type Message struct {
	SID                 string // "SM" + 32 hex digits
	AccountSID          string // from the request path
	To                  string
	From                string
	MessagingServiceSID string
	Body                string
	Created             time.Time
}

// Request is one authenticated request that reached the Messages endpoint,
// whatever the fake answered. Tests use it to count attempts (retries) and
// to see what was sent even when the fake was told to fail.
type Request struct {
	AccountSID          string
	To                  string
	From                string
	MessagingServiceSID string
	Body                string
	Status              int // HTTP status the fake answered
	Code                int // Twilio error code answered, 0 on success
}

// failure is a scripted error answer. code is the Twilio error code put in
// the JSON body; a zero Code makes the fake answer with a non-JSON body, the
// way a load balancer or proxy in front of Twilio does on 502/503.
type failure struct {
	Status int
	Code   int
}

// Server is the fake. Build it with New (listening on loopback) or
// NewUnstarted (a bare http.Handler for a process that picks its own
// address).
type Server struct {
	accountSID string
	authToken  string
	srv        *httptest.Server // nil for NewUnstarted
	closed     chan struct{}
	closeOnce  sync.Once

	mu       sync.Mutex
	messages []Message
	requests []Request
	failNext []failure
	failTo   map[string]failure
	latency  time.Duration
	seq      uint64
	changed  chan struct{} // closed and replaced whenever messages or requests grow
}

// New starts a fake on a random loopback port that accepts the given
// credentials. Close it when done.
func New(accountSID, authToken string) *Server {
	s := NewUnstarted(accountSID, authToken)
	s.srv = httptest.NewServer(s)
	return s
}

// NewUnstarted returns a fake that does not listen: serve it with your own
// http.Server. URL returns "" for it.
func NewUnstarted(accountSID, authToken string) *Server {
	return &Server{
		accountSID: accountSID,
		authToken:  authToken,
		closed:     make(chan struct{}),
		failTo:     make(map[string]failure),
		changed:    make(chan struct{}),
	}
}

// URL is the base URL to give the client in place of https://api.twilio.com.
func (s *Server) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// Close releases requests held by SetLatency and, for a fake built by New,
// shuts the listener down. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	if s.srv != nil {
		s.srv.Close()
	}
}

// FailNext makes the next n requests to the Messages endpoint (after the
// credential check) fail with the given HTTP status and Twilio error code.
// Calls queue up in order.
func (s *Server) FailNext(n, status, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{Status: status, Code: code})
	}
}

// FailTo makes every message to the number to (E.164) fail with the given
// HTTP status and Twilio error code, the way Twilio always rejects an
// unsubscribed or invalid number. A zero status removes the rule.
func (s *Server) FailTo(to string, status, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.failTo, to)
		return
	}
	s.failTo[to] = failure{Status: status, Code: code}
}

// SetLatency delays every answer by d, or until the client goes away or the
// fake is closed, so tests can check that a cancelled context stops a send.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Messages returns a copy of the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Requests returns a copy of every authenticated request to the Messages
// endpoint so far, failed ones included, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WaitMessages blocks until at least n messages were accepted and returns
// them, or returns ctx's error with the messages seen so far.
func (s *Server) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.messages) >= n {
			msgs := append([]Message(nil), s.messages...)
			s.mu.Unlock()
			return msgs, nil
		}
		changed := s.changed
		msgs := append([]Message(nil), s.messages...)
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return msgs, fmt.Errorf("twiliotest: %d of %d messages: %w", len(msgs), n, ctx.Err())
		}
	}
}

// ServeHTTP implements the Messages endpoint and answers every other path
// with Twilio's 404 body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	// Constant-time even in a fake: it may run as a long-lived process and
	// should not teach anyone to compare secrets with ==.
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.accountSID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.authToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}

	sid, ok := messagesPathSID(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if sid != s.accountSID {
		// Twilio answers a foreign or empty account path with 404 too; an
		// empty sid is what twilio-go sends when SetAccountSid was forgotten.
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, 20001, "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Could not parse the request body")
		return
	}
	req := Request{
		AccountSID:          sid,
		To:                  r.PostForm.Get("To"),
		From:                r.PostForm.Get("From"),
		MessagingServiceSID: r.PostForm.Get("MessagingServiceSid"),
		Body:                r.PostForm.Get("Body"),
	}

	if !s.wait(r.Context()) {
		return // client gone or fake closed: nobody reads the answer
	}

	status, code, msg := s.check(req)
	if status != 0 {
		req.Status, req.Code = status, code
		s.record(req)
		if code == 0 {
			http.Error(w, "<html><body>"+http.StatusText(status)+"</body></html>", status)
			return
		}
		writeError(w, status, code, msg)
		return
	}

	m := s.accept(req)
	writeJSON(w, http.StatusCreated, messageResource(m))
}

// wait holds the answer for the configured latency. It reports false when
// the request should be dropped instead.
func (s *Server) wait(ctx context.Context) bool {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// check decides the answer for req: scripted failures first, then the
// validation Twilio itself does. A zero status means accept.
func (s *Server) check(req Request) (status, code int, msg string) {
	s.mu.Lock()
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.mu.Unlock()
		return f.Status, f.Code, messageFor(f.Code, req.To)
	}
	f, ok := s.failTo[req.To]
	s.mu.Unlock()
	if ok {
		return f.Status, f.Code, messageFor(f.Code, req.To)
	}

	switch {
	case req.To == "":
		return http.StatusBadRequest, 21604, "A 'To' phone number is required."
	case !isE164(req.To):
		return http.StatusBadRequest, 21211, messageFor(21211, req.To)
	case req.From == "" && req.MessagingServiceSID == "":
		return http.StatusBadRequest, 21603, "A 'From' phone number is required."
	case req.Body == "":
		return http.StatusBadRequest, 21602, "Message body is required."
	}
	return 0, 0, ""
}

// accept stores req as a queued message and wakes waiters.
func (s *Server) accept(req Request) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	m := Message{
		SID:                 fmt.Sprintf("SM%032x", s.seq),
		AccountSID:          req.AccountSID,
		To:                  req.To,
		From:                req.From,
		MessagingServiceSID: req.MessagingServiceSID,
		Body:                req.Body,
		Created:             time.Now().UTC(),
	}
	req.Status = http.StatusCreated
	s.messages = append(s.messages, m)
	s.requests = append(s.requests, req)
	s.notifyLocked()
	return m
}

// record stores a failed request and wakes waiters.
func (s *Server) record(req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	s.notifyLocked()
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// messagesPathSID extracts {sid} from /2010-04-01/Accounts/{sid}/Messages.json.
func messagesPathSID(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/"+apiVersion+"/Accounts/")
	if !ok {
		return "", false
	}
	sid, ok := strings.CutSuffix(rest, "/Messages.json")
	if !ok || strings.Contains(sid, "/") {
		return "", false
	}
	return sid, true
}

func isE164(s string) bool {
	d, ok := strings.CutPrefix(s, "+")
	if !ok || len(d) < 8 || len(d) > 15 || d[0] == '0' {
		return false
	}
	for _, r := range d {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// messageFor returns the text Twilio uses for code. Like the real API, some
// texts quote the destination number: clients must never log them.
func messageFor(code int, to string) string {
	switch code {
	case 20003:
		return "Authenticate"
	case 20429:
		return "Too Many Requests"
	case 21211:
		return "The 'To' number " + to + " is not a valid phone number."
	case 21408:
		return "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: " + to
	case 21610:
		return "Attempt to send to unsubscribed recipient"
	case 21612:
		return "The 'To' phone number: " + to + ", is not currently reachable using the 'From' phone number via SMS."
	case 21614:
		return "'To' number is not a valid mobile number"
	case 20500:
		return "An internal server error has occurred"
	}
	return "Error " + fmt.Sprint(code)
}

// errorBody is Twilio's legacy JSON error shape, which twilio-go decodes into
// *client.TwilioRestError.
type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, errorBody{
		Code:     code,
		Message:  msg,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

// messageResource renders m the way Twilio answers a create: status
// "queued" from a number, "accepted" through a Messaging Service, with the
// nulls a fresh message has.
func messageResource(m Message) map[string]any {
	date := m.Created.Format(time.RFC1123Z)
	uri := "/" + apiVersion + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID
	status := "queued"
	var from, mss any = m.From, nil
	if m.MessagingServiceSID != "" {
		mss = m.MessagingServiceSID
		if m.From == "" {
			status, from = "accepted", nil
		}
	}
	return map[string]any{
		"account_sid":           m.AccountSID,
		"api_version":           apiVersion,
		"body":                  m.Body,
		"date_created":          date,
		"date_sent":             nil,
		"date_updated":          date,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  from,
		"messaging_service_sid": mss,
		"num_media":             "0",
		"num_segments":          "1",
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                status,
		"subresource_uris":      map[string]string{"media": uri + "/Media.json"},
		"to":                    m.To,
		"uri":                   uri + ".json",
	}
}
