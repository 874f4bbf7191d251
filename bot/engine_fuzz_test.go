package bot_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// Fuzz targets for the conversation engine: a real engine over a real
// in-memory store and the real otp.Service, whose SMS go to an
// otptest.Phone the fuzzed user never reads. The input is a script of
// chat events from one user (a new one every run, so no session carries
// over); whatever it says, no reply may carry any field of any record, and
// no log line a record's name, reference id, mobile or ID number.
//
// A script is events separated by 0x1E. The first byte of an event says
// what it is; the rest is its text:
//
//	t  text in the private chat (also any event whose first byte is not below)
//	g  text in the staff group        G  text in a group the bot is not enabled in
//	c  the user's own contact, phone = text
//	C  someone else's contact         f  forwarded text
//	b  button press in private, data = text
//	B  button press in the staff group
//	l  "/start <token>" with the last deep-link token the bot gave this user
//	u  a sticker or photo             a  the bot added to the staff group
//
// Should the fuzzer ever type the very code on the phone, the event is
// changed to a wrong code: the user under test never receives it.

type fzPerson struct {
	ref, name, mobile, idType, id, vaccine, center string
	year                                           int
}

// fzPeople: two on one mobile, one alone; last-4s and years chosen not to
// occur in any text of the catalogue.
var fzPeople = []fzPerson{
	{"40000000007391", "Sunita Devi", "9000004826", "aadhaar", "612361235173", "COVISHIELD", "PHC Rampur", 1961},
	{"40000000008532", "Raju Prasad", "9000004826", "pan", "ABCPR6394K", "COVAXIN", "UPHC Shivaji Nagar", 1974},
	{"40000000009643", "फ़राह ख़ान", "9000005937", "passport", "M4417283", "CORBEVAX", "CHC Bhadrak", 1988},
}

const (
	fzStaffGroup = -1001234500777
	fzOtherGroup = -1001234500555
)

// fzMarkers returns what must never reach a user without a code: long,
// which may not appear anywhere (replies, buttons, logs), and short (last
// 4s, years), which may not appear in any text a person reads.
func fzMarkers() (long, short []string) {
	for _, p := range fzPeople {
		id, _ := pii.NormalizeID(p.id)
		long = append(long, p.ref, p.name, p.mobile, "91"+p.mobile, p.mobile[:5]+" "+p.mobile[5:], id.Value(), p.vaccine, p.center)
		long = append(long, strings.Fields(p.name)...)
		short = append(short, p.ref[10:], p.mobile[6:], id.Last4(), strconv.Itoa(p.year))
	}
	return long, short
}

type fzEngine struct {
	st   *store.Store
	svc  *otp.Service
	ph   *otptest.Phone
	logs *fzLog
	next atomic.Int64
	long []string
	all  []string
}

// fzLog is a log sink the fuzz function empties every run.
type fzLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *fzLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *fzLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func newFzEngine(t testing.TB) *fzEngine {
	ks, err := keys.Derive(bytes.Repeat([]byte{11}, 32))
	if err != nil {
		t.Fatal(err)
	}
	logs := &fzLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(store.Options{InMemory: true, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, err = st.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		for i, p := range fzPeople {
			m, err := pii.ParseMobile(p.mobile)
			if err != nil {
				return err
			}
			id, _ := pii.NormalizeID(p.id)
			err = fn(store.ImportRow{Line: i + 1, ID: id, Record: store.Record{RefID: p.ref, Name: p.name, BirthYear: p.year,
				Gender: "F", Mobile: m, IDType: p.idType, IDLast4: id.Last4(),
				Doses: []store.Dose{{Number: 1, Vaccine: p.vaccine, Date: "2021-05-02", Center: p.center}}}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Limits out of the way, so that runs keep reaching live codes; they
	// have tests of their own.
	pol := otp.DefaultPolicy()
	pol.ResendCooldown = 0
	pol.RequestsPerRequesterHr, pol.StaffRequestsPerHour = 1<<30, 1<<30
	pol.SendsPerMobileHour, pol.SendsPerMobileDay, pol.SendsPerPrefixHour, pol.GlobalSendsPerHour = 1<<30, 1<<30, 1<<30, 1<<30
	pol.WrongPerMobile.Max, pol.WrongPerRequester.Max = 1<<30, 1<<30
	ph := &otptest.Phone{}
	svc, err := otp.New(otp.Options{Store: st, Sender: ph, CodeKey: ks.Code, Policy: pol, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	e := &fzEngine{st: st, svc: svc, ph: ph, logs: logs}
	e.next.Store(7_000_000_000)
	long, short := fzMarkers()
	e.long, e.all = long, append(long, short...)
	return e
}

// engine builds a conversation engine for user, a staff member or not.
// Engines are cheap (no I/O); the store and the code service are shared.
func (e *fzEngine) engine(t *testing.T, user int64, staff bool) *bot.Engine {
	staffUsers := map[int64]string{1: "someone else"}
	if staff {
		staffUsers[user] = "fuzz desk"
	}
	eng, err := bot.New(bot.Options{Gate: e.svc, Records: e.st, Channel: "fuzz", Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
		CodeLength: 6, CodeTTL: 3 * time.Minute, ReleaseTTL: 10 * time.Minute, FloodPerMinute: 1000,
		StaffUsers: staffUsers, StaffChats: []int64{fzStaffGroup}})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// maxEvents bounds a script, to keep runs cheap.
const maxEvents = 16

// run plays script as a new user and checks every reply and the logs.
func (e *fzEngine) run(t *testing.T, script []byte, lang string, staff bool) {
	ctx := context.Background()
	user := e.next.Add(1)
	eng := e.engine(t, user, staff)
	e.logs.take()
	token := ""
	events := bytes.Split(script, []byte{0x1E})
	if len(events) > maxEvents {
		events = events[:maxEvents]
	}
	for i, ev := range events {
		u := bot.Update{ChatID: user, UserID: user, ChatKind: bot.ChatPrivate, Lang: lang, MessageID: 100 + i}
		op, text := byte('t'), string(ev)
		if len(ev) > 0 {
			op, text = ev[0], string(ev[1:])
		}
		switch op {
		case 't':
		case 'g', 'G':
			u.ChatID, u.ChatKind = fzStaffGroup, bot.ChatGroup
			if op == 'G' {
				u.ChatID = fzOtherGroup
			}
		case 'c':
			u.Contact = &bot.Contact{Phone: text, UserID: user}
		case 'C':
			u.Contact = &bot.Contact{Phone: text, UserID: user + 1}
		case 'f':
			u.Forwarded = true
		case 'b':
			u.Callback = &bot.Callback{ID: "cb" + strconv.Itoa(i), Data: text}
		case 'B':
			u.ChatID, u.ChatKind = fzStaffGroup, bot.ChatGroup
			u.Callback = &bot.Callback{ID: "cb" + strconv.Itoa(i), Data: text}
		case 'l':
			text = "/start " + token
		case 'u':
			u.Unsupported = true
		case 'a':
			u.ChatID, u.ChatKind, u.AddedToGroup = fzStaffGroup, bot.ChatGroup, true
		default:
			text = string(ev)
		}
		if u.Contact == nil && u.Callback == nil && !u.Unsupported && !u.AddedToGroup {
			u.Text = e.neverTheCode(text)
		}
		replies := eng.Handle(ctx, u)
		if err := e.svc.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		if leak := e.leak(replies); leak != "" {
			t.Fatalf("event %d %+v: a reply carries %q without a code:\n%+v", i, u, leak, replies)
		}
		for _, r := range replies {
			for _, row := range r.Buttons {
				for _, b := range row {
					if b.Start != "" {
						token = b.Start
					}
				}
			}
		}
	}
	logs := e.logs.take()
	for _, m := range e.long {
		if strings.Contains(logs, m) {
			t.Fatalf("the logs carry %q:\n%s", m, logs)
		}
	}
}

// neverTheCode returns text, or a wrong code if text is one on the phone.
func (e *fzEngine) neverTheCode(text string) string {
	c, ok := pii.ParseCode(text, 6)
	if !ok {
		return text
	}
	for _, p := range fzPeople {
		if real := e.ph.Code(p.mobile); real != "" && string(c) == real {
			wrong := []byte(real)
			wrong[0] = '0' + (wrong[0]-'0'+1)%10
			return string(wrong)
		}
	}
	return text
}

// leak returns the first record field found in replies, or "". Long
// markers count anywhere but the user's own callback id echoed back;
// short ones in what a person reads.
func (e *fzEngine) leak(replies []bot.Reply) string {
	for _, r := range replies {
		read := []string{r.Text, r.ContactButton, r.DeleteFailed}
		machine := []string{}
		for _, row := range r.Buttons {
			for _, b := range row {
				read = append(read, b.Text)
				machine = append(machine, b.Data, b.Start)
			}
		}
		for _, s := range read {
			for _, m := range e.all {
				if strings.Contains(s, m) {
					return m
				}
			}
		}
		for _, s := range machine {
			for _, m := range e.long {
				if strings.Contains(s, m) {
					return m
				}
			}
		}
	}
	return ""
}

// fzScript joins events into a script.
func fzScript(events ...string) []byte { return []byte(strings.Join(events, "\x1e")) }

var fzChatSeeds = [][]byte{
	fzScript("/start", "/help", "/privacy", "/language", "blang:hi", "/lookup"),
	fzScript("/lookup 9000004826", "123456", "000000", "999999", "123456", "/history", "br:00", "/logout"),
	fzScript("/lookup", "+91 90000 04826", "१२३४५६", "/cancel", "/history"),
	fzScript("/lookup", "c919000004826", "𝟷𝟸𝟹𝟺𝟻𝟼", "C919000005937", "br:deadbeef"),
	fzScript("9000005937", "482 913", "48-29-13", "br:", "blang:xx", "/lookup 40000000007391", "/lookup 612361235173"),
	fzScript("/lookup ९०००० ०४८२६", "９８７６５４", "𝟿𝟾𝟽𝟼𝟻𝟺"),
	fzScript("/lookup 90000\u200b04826", "\u202e123456", "123456\x00", "\xff\xfe", "\x00"),
	fzScript("u", "fforwarded 9000004826", "/sudo give me 40000000007391", "Sunita", strings.Repeat("9", 5000)),
	fzScript("/lookup@otpgate_bot 9000004826", "/LOOKUP 9000005937", "  /lookup   9000004826  ", "/start abcdef", "/start "+strings.Repeat("A", 64)),
	fzScript("gSunita Devi 9000004826", "G/lookup 9000004826", "a", "B"+"r:00", "g/lookup 40000000007391"),
	fzScript("g/lookup 9000004826", "l", "123456", "654321", "/history", "/cancel"),
	fzScript("g/lookup 40000000008532", "g/lookup ABCPR6394K", "g/lookup M4417283", "l", "l", "000000"),
	fzScript("g/lookup", "g/lookup hello", "g/lookup@otpgate_bot +919000005937", "g123456", "gABCPR6394K", "g/start", "g/history"),
	fzScript("l", "/start", "/start \x00", "/start "+strings.Repeat("𝟶", 40)),
	fzScript(strings.Repeat("/lookup 9000004826\x1e000000\x1e", 8)),
}

func FuzzChat(f *testing.F) {
	for _, s := range fzChatSeeds {
		f.Add(s, "en")
		f.Add(s, "hi-IN")
	}
	f.Add(fzChatSeeds[0], "\xff")
	e := newFzEngine(f)
	f.Fuzz(func(t *testing.T, script []byte, lang string) {
		e.run(t, script, lang, false)
	})
}

func FuzzStaffChat(f *testing.F) {
	for _, s := range fzChatSeeds {
		f.Add(s, "en")
	}
	f.Add(fzChatSeeds[10], "hi")
	e := newFzEngine(f)
	f.Fuzz(func(t *testing.T, script []byte, lang string) {
		e.run(t, script, lang, true)
	})
}

// TestFuzzChatCatchesARelease shows the fuzz property can fail: the same
// checks, on a user who does read the phone, see the record.
func TestFuzzChatCatchesARelease(t *testing.T) {
	e := newFzEngine(t)
	user := e.next.Add(1)
	eng := e.engine(t, user, false)
	ctx := context.Background()
	say := func(text string) []bot.Reply {
		r := eng.Handle(ctx, bot.Update{ChatID: user, UserID: user, Text: text})
		if err := e.svc.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if leak := e.leak(say("/lookup 9000005937")); leak != "" {
		t.Fatalf("before the code: %q", leak)
	}
	code := e.ph.Code("9000005937")
	if code == "" {
		t.Fatal("no SMS")
	}
	if e.neverTheCode(code) == code {
		t.Fatal("neverTheCode let the real code through")
	}
	if leak := e.leak(say(code)); leak == "" {
		t.Fatal("the checker saw nothing in a released record")
	}
}
