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
	// shown, so a person can tell whether a code answers their own request.
	Tag string
}

// Templates holds one SMS text per audience and language. Indian carriers
// deliver only texts that match a registered DLT template exactly, so
// operators replace these with their registered wording.
type Templates struct {
	t map[store.Audience]map[string]*template.Template
}

// DefaultTemplates put the code first, name the service, the request tag
// and the validity, and warn not to share the code (staff: share it only
// with the agent one asked for help). Rendered with the longest values
// (a 6-digit code, 10 minutes, a 16-character agent label, a 4-character
// tag) each fits in two SMS segments: 306 GSM-7 characters, or 134 UTF-16
// units for any text in an Indic script (UCS-2); TestDefaultTemplatesFit
// checks it.
var defaultTemplates = map[store.Audience]map[string]string{
	store.AudienceBeneficiary: {
		"en": "{{.Code}} is your otpgate code to view your vaccination record (request {{.Tag}}). Valid {{.Minutes}} min. Never share it with anyone.",
		"hi": "{{.Code}} टीकाकरण रिकॉर्ड देखने के लिए आपका otpgate कोड है (अनुरोध {{.Tag}})। {{.Minutes}} मिनट तक मान्य। इसे कभी किसी को न बताएँ।",
		"as": "{{.Code}} আপোনাৰ টীকাকৰণৰ ৰেকৰ্ড চাবলৈ otpgate ক'ড (অনুৰোধ {{.Tag}})। {{.Minutes}} মিনিট বৈধ। এই ক'ড কেতিয়াও কাকো নক'ব।",
		"bn": "{{.Code}} আপনার টিকাকরণের রেকর্ড দেখার otpgate কোড (অনুরোধ {{.Tag}})। {{.Minutes}} মিনিট বৈধ। এই কোড কখনও কাউকে বলবেন না।",
		"gu": "{{.Code}} તમારો રસીકરણ રેકોર્ડ જોવા માટેનો otpgate કોડ છે (વિનંતી {{.Tag}}). {{.Minutes}} મિનિટ માન્ય. આ કોડ ક્યારેય કોઈને જણાવશો નહીં.",
		"kn": "{{.Code}} ನಿಮ್ಮ ಲಸಿಕೆ ದಾಖಲೆ ನೋಡಲು otpgate ಕೋಡ್ (ವಿನಂತಿ {{.Tag}}). {{.Minutes}} ನಿಮಿಷ ಮಾನ್ಯ. ಇದನ್ನು ಎಂದಿಗೂ ಯಾರಿಗೂ ಹೇಳಬೇಡಿ.",
		"ml": "{{.Code}}: വാക്സിനേഷൻ രേഖ കാണാനുള്ള നിങ്ങളുടെ otpgate OTP (അഭ്യർത്ഥന {{.Tag}}). {{.Minutes}} മിനിറ്റ് സാധുത. ആരോടും പറയുകയോ പങ്കിടുകയോ ചെയ്യരുത്.",
		"mr": "{{.Code}} हा तुमची लसीकरण नोंद पाहण्यासाठीचा otpgate कोड आहे (विनंती {{.Tag}}). {{.Minutes}} मिनिटे वैध. हा कोड कधीही कोणालाही सांगू नका.",
		"or": "{{.Code}}: ଆପଣଙ୍କ ଟିକାକରଣ ରେକର୍ଡ ଦେଖିବା ପାଇଁ otpgate OTP (ଅନୁରୋଧ {{.Tag}})। {{.Minutes}} ମିନିଟ୍ ବୈଧ। କାହାକୁ କୁହନ୍ତୁ ନାହିଁ କି ପଠାନ୍ତୁ ନାହିଁ।",
		"pa": "{{.Code}}: ਤੁਹਾਡਾ ਟੀਕਾਕਰਨ ਰਿਕਾਰਡ ਦੇਖਣ ਲਈ otpgate ਕੋਡ (ਬੇਨਤੀ {{.Tag}})। {{.Minutes}} ਮਿੰਟ ਲਈ ਵੈਧ। ਇਹ ਕਿਸੇ ਨੂੰ ਨਾ ਦੱਸੋ, ਨਾ ਭੇਜੋ।",
		"ta": "{{.Code}}: உங்கள் தடுப்பூசி பதிவைக் காண otpgate OTP (கோரிக்கை {{.Tag}}). {{.Minutes}} நிமிடம் செல்லுபடியாகும். யாரிடமும் சொல்லவோ பகிரவோ வேண்டாம்.",
		"te": "{{.Code}}: మీ టీకా రికార్డు చూసేందుకు otpgate OTP (అభ్యర్థన {{.Tag}}). {{.Minutes}} నిమిషాలు చెల్లుతుంది. ఎవరికీ చెప్పవద్దు, పంచుకోవద్దు.",
	},
	store.AudienceStaff: {
		"en": "{{.Code}} is your otpgate code to let helpdesk agent #{{.Agent}} view your vaccination record (request {{.Tag}}). Valid {{.Minutes}} min. Share it only if you asked them for help.",
		"hi": "{{.Code}} otpgate कोड (अनुरोध {{.Tag}}): हेल्पडेस्क एजेंट #{{.Agent}} आपका टीका रिकॉर्ड देखेंगे। {{.Minutes}} मिनट वैध। मदद माँगी हो तभी बताएँ।",
		"as": "{{.Code}} otpgate ক'ড (অনুৰোধ {{.Tag}}): হেল্পডেস্ক এজেণ্ট #{{.Agent}}-এ আপোনাৰ টীকাৰ ৰেকৰ্ড চাব। {{.Minutes}} মিনিট বৈধ। সহায় বিচাৰিলেহে ক'ব।",
		"bn": "{{.Code}} otpgate কোড (অনুরোধ {{.Tag}}): হেল্পডেস্ক এজেন্ট #{{.Agent}} আপনার টিকার তথ্য দেখবেন। {{.Minutes}} মিনিট বৈধ। সাহায্য চাইলে তবেই বলবেন।",
		"gu": "{{.Code}} otpgate કોડ (વિનંતી {{.Tag}}): હેલ્પડેસ્ક એજન્ટ #{{.Agent}} તમારો રસીકરણ રેકોર્ડ જોશે. {{.Minutes}} મિનિટ માન્ય. મદદ માગી હોય તો જ કહો.",
		"kn": "{{.Code}} otpgate ಕೋಡ್ (ವಿನಂತಿ {{.Tag}}): ಏಜೆಂಟ್ #{{.Agent}} ನಿಮ್ಮ ಲಸಿಕೆ ದಾಖಲೆ ನೋಡಬಹುದು. {{.Minutes}} ನಿಮಿಷ ಮಾನ್ಯ. ಸಹಾಯ ಕೇಳಿದ್ದರೆ ಮಾತ್ರ ಹೇಳಿ.",
		"ml": "{{.Code}}: ഏജന്റ് #{{.Agent}}-ന് നിങ്ങളുടെ രേഖ കാണാൻ otpgate OTP (അഭ്യർത്ഥന {{.Tag}}). {{.Minutes}} മിനിറ്റ് സാധുത. സഹായം തേടിയെങ്കിലേ നൽകാവൂ.",
		"mr": "{{.Code}} otpgate कोड (विनंती {{.Tag}}): हेल्पडेस्क एजंट #{{.Agent}} तुमची लसीकरण नोंद पाहतील. {{.Minutes}} मिनिटे वैध. मदत मागितली तरच सांगा.",
		"or": "{{.Code}}: ଏଜେଣ୍ଟ #{{.Agent}} ଆପଣଙ୍କ ଟିକା ରେକର୍ଡ ଦେଖିବାକୁ otpgate OTP (ଅନୁରୋଧ {{.Tag}})। {{.Minutes}} ମିନିଟ୍ ବୈଧ। ସାହାଯ୍ୟ ମାଗିଥିଲେ ହିଁ କୁହନ୍ତୁ।",
		"pa": "{{.Code}}: ਏਜੰਟ #{{.Agent}} ਇਸ otpgate ਕੋਡ ਨਾਲ ਤੁਹਾਡਾ ਟੀਕਾ ਰਿਕਾਰਡ ਦੇਖ ਸਕਣਗੇ (ਬੇਨਤੀ {{.Tag}})। {{.Minutes}} ਮਿੰਟ ਵੈਧ। ਮਦਦ ਮੰਗੀ ਹੋਵੇ ਤਾਂ ਹੀ ਦੱਸੋ।",
		"ta": "{{.Code}}: ஊழியர் #{{.Agent}} உங்கள் பதிவைக் காண otpgate OTP (கோரிக்கை {{.Tag}}). {{.Minutes}} நிமிடம் செல்லும். உதவி கேட்காவிட்டால் தராதீர்கள்.",
		"te": "{{.Code}}: ఏజెంట్ #{{.Agent}} మీ రికార్డు చూసేందుకు otpgate OTP (అభ్యర్థన {{.Tag}}). {{.Minutes}} నిమిషాలు చెల్లుతుంది. సహాయం అడిగితేనే చెప్పండి.",
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
