package otp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/otpgate/otpgate/store"
)

// SMSData is what an SMS template can use.
type SMSData struct {
	Code    string // the one-time code
	Minutes int    // validity
	Agent   string // staff label, for staff lookups
	// Tag is a short tag, e.g. KX42, that the requesting chat is also
	// shown, so a person can tell which request a code answers.
	Tag string
}

// Templates holds one SMS text per audience and language. Indian carriers
// deliver only texts that match a registered DLT template exactly, so
// operators replace these with their registered wording.
type Templates struct {
	t map[store.Audience]map[string]*template.Template
}

// DefaultTemplates put the code first, name the service and the validity,
// and warn not to share the code.
var defaultTemplates = map[store.Audience]map[string]string{
	store.AudienceBeneficiary: {
		"en": "{{.Code}} is your otpgate code to view your vaccination record (request {{.Tag}}). Valid {{.Minutes}} min. Never share it with anyone.",
		"hi": "{{.Code}} टीकाकरण रिकॉर्ड देखने के लिए आपका otpgate कोड है (अनुरोध {{.Tag}})। {{.Minutes}} मिनट तक मान्य। इसे कभी किसी को न बताएँ।",
	},
	store.AudienceStaff: {
		"en": "{{.Code}} is your otpgate code to let helpdesk agent #{{.Agent}} view your vaccination record (request {{.Tag}}). Valid {{.Minutes}} min. Share it only if you asked them for help.",
		"hi": "{{.Code}} otpgate कोड (अनुरोध {{.Tag}}): हेल्पडेस्क एजेंट #{{.Agent}} आपका टीका रिकॉर्ड देखेंगे। {{.Minutes}} मिनट वैध। मदद माँगी हो तभी बताएँ।",
	},
}

// DefaultTemplates returns the built-in texts.
func DefaultTemplates() Templates {
	t, err := parseTemplates(defaultTemplates)
	if err != nil {
		panic(err) // the built-in texts are constants checked by tests
	}
	return t
}

// LoadTemplates reads operator templates as JSON:
//
//	{"beneficiary": {"en": "...", "hi": "..."}, "staff": {"en": "...", "hi": "..."}}
//
// Missing entries keep the defaults. Every template must use {{.Code}} and
// {{.Tag}}, so the owner can tell which request a code answers; staff
// templates must also use {{.Agent}}, so the owner learns who asks.
func LoadTemplates(r io.Reader) (Templates, error) {
	var in map[store.Audience]map[string]string
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Templates{}, fmt.Errorf("sms templates: %w", err)
	}
	merged := map[store.Audience]map[string]string{}
	for a, langs := range defaultTemplates {
		merged[a] = map[string]string{}
		for l, s := range langs {
			merged[a][l] = s
		}
	}
	var errs []error
	for a, langs := range in {
		if _, ok := merged[a]; !ok {
			errs = append(errs, fmt.Errorf("sms templates: unknown audience %q (want beneficiary or staff)", a))
			continue
		}
		for l, s := range langs {
			merged[a][l] = s
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Templates{}, err
	}
	return parseTemplates(merged)
}

func parseTemplates(src map[store.Audience]map[string]string) (Templates, error) {
	t := Templates{t: map[store.Audience]map[string]*template.Template{}}
	var errs []error
	for a, langs := range src {
		t.t[a] = map[string]*template.Template{}
		for l, s := range langs {
			name := string(a) + "/" + l
			if !strings.Contains(s, "{{.Code}}") {
				errs = append(errs, fmt.Errorf("sms template %s: must contain {{.Code}}", name))
			}
			if !strings.Contains(s, "{{.Tag}}") {
				errs = append(errs, fmt.Errorf("sms template %s: must contain {{.Tag}} so the owner can tell which request the code answers", name))
			}
			if a == store.AudienceStaff && !strings.Contains(s, "{{.Agent}}") {
				errs = append(errs, fmt.Errorf("sms template %s: must contain {{.Agent}} so the owner knows who asks", name))
			}
			tp, err := template.New(name).Option("missingkey=error").Parse(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("sms template %s: %w", name, err))
				continue
			}
			t.t[a][l] = tp
		}
	}
	return t, errors.Join(errs...)
}

// Render returns the SMS text for audience and lang, falling back to English.
func (t Templates) Render(a store.Audience, lang string, d SMSData) (string, error) {
	tp := t.t[a][lang]
	if tp == nil {
		tp = t.t[a]["en"]
	}
	if tp == nil {
		return "", fmt.Errorf("sms template %s/%s: none", a, lang)
	}
	var b strings.Builder
	if err := tp.Execute(&b, d); err != nil {
		return "", fmt.Errorf("sms template %s/%s: %w", a, lang, err)
	}
	return b.String(), nil
}
