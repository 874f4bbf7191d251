package bot

import (
	"fmt"
	"strings"

	"github.com/otpgate/otpgate/store"
)

// msg names one text of the catalogue. Every language has every key;
// TestCatalogueComplete checks it.
type msg int

const (
	msgStart msg = iota
	msgHelp
	msgPrivacy
	msgAskMobile
	msgShareButton
	msgNotMobile
	msgCodeSent
	msgNotCode
	msgCodeRejected
	msgTryLater
	msgChoose
	msgNoRecords
	msgSessionEnded
	msgNoSession
	msgLoggedOut
	msgCancelled
	msgNothingToCancel
	msgUnknownCommand
	msgTextOnly
	msgTooLong
	msgNotYourContact
	msgPrivateOnly
	msgLanguageAsk
	msgLanguageSet
	msgStaleButton
	msgDeletedAfter
	msgRecordName
	msgRecordBorn
	msgRecordID
	msgRecordStatus
	msgRecordDose
	msgRecordReference
	msgRecordMobile
	msgStatusNone
	msgStatusPartial
	msgStatusFull
	msgGenderM
	msgGenderF
	msgGenderO
	msgSlowDown
	msgMenuLookup
	msgMenuLogout
	msgMenuCancel
	msgMenuLanguage
	msgMenuPrivacy
	msgMenuHelp
	msgMenuHistory
	msgGroupNotEnabled
	msgGroupWelcome
	msgGroupNotStaff
	msgGroupDeleted
	msgNeedDeleteRight
	msgStaffUsage
	msgStaffBadIdentifier
	msgStaffCodeSent
	msgStaffButton
	msgLinkInvalid
	msgStaffEnterCode
	msgHistoryNeedsCode
	msgHistoryEmpty
	msgHistoryTitle
	msgHistoryLine
	msgHistoryYou
	msgHistoryAgent
	msgHistoryOther
	msgHistoryRecord
	msgHistoryNames
	// Added for the request tag (issue 11).
	msgCodeSentTagged
	msgStaffCodeSentTagged
	msgCount // keep last
)

// Languages the bot speaks, in menu order.
var languages = []struct{ Code, Name string }{
	{"en", "English"},
	{"hi", "हिन्दी"},
}

var catalogue = map[string][msgCount]string{
	"en": english,
	"hi": hindi,
}

var english = [msgCount]string{
	msgStart: "Hello! I show your COVID-19 vaccination record — only after you prove the registered mobile number is yours with a one-time code sent to it by SMS.\n\n" +
		"Send /lookup to begin. /privacy explains what is kept, /help lists the commands.",
	// msgHelp heads /help; the lines come from the command table.
	msgHelp: "Commands:",
	msgPrivacy: "What happens to your data:\n" +
		"• Your record is shown only after the code sent by SMS to the mobile number registered on it is typed here.\n" +
		"• The code is valid for %d minutes and works once. Never share it with anyone you did not ask for help.\n" +
		"• Messages with your record are protected from forwarding and are deleted from this chat after %d minutes.\n" +
		"• Every code sent and every record shown is written to a tamper-evident audit log. ID numbers are not stored; only their last 4 characters are.\n" +
		"• /logout ends your session at once.",
	msgAskMobile:          "Send the mobile number registered for vaccination (for example 98765 43210), or tap the button to share this phone's number.",
	msgShareButton:        "Share my phone number",
	msgNotMobile:          "That doesn't look like a mobile number. Send 10 digits, for example 98765 43210, or /cancel.",
	msgCodeSent:           "If this number is registered, a %d-digit code has been sent to it by SMS. Reply with the code within %d minutes.\n\nDidn't get it? Wait a minute, then send /lookup again.",
	msgNotCode:            "Please reply with the %d-digit code from the SMS, or send /cancel.",
	msgCodeRejected:       "That code didn't work. It may be mistyped, expired or already used, or too many codes were tried. Check the SMS, or send /lookup for a new code.",
	msgTryLater:           "Something went wrong on our side. Nothing was shown. Please try again in a few minutes.",
	msgChoose:             "Verified. Choose a beneficiary registered on this number:",
	msgNoRecords:          "Verified, but there are no records to show on this number any more.",
	msgSessionEnded:       "Your session has ended. Send /lookup to verify again.",
	msgNoSession:          "You have no open session.",
	msgLoggedOut:          "You are signed out. Send /lookup to start again.",
	msgCancelled:          "Cancelled. Send /lookup to start again.",
	msgNothingToCancel:    "There is nothing to cancel.",
	msgUnknownCommand:     "I don't know that command. Send /help to see what I can do.",
	msgTextOnly:           "I can only read text messages. Send /help to see what I can do.",
	msgTooLong:            "That message is too long for me. Send /help to see what I can do.",
	msgNotYourContact:     "I can only accept your own phone number. Tap the button, or type the registered mobile number.",
	msgPrivateOnly:        "I work only in private chats. Please message me directly.",
	msgLanguageAsk:        "Choose your language:",
	msgLanguageSet:        "Language set to English.",
	msgStaleButton:        "This button has expired. Send /lookup to start again.",
	msgDeletedAfter:       "This message will be deleted in %d minutes.",
	msgRecordName:         "Name: %s",
	msgRecordBorn:         "Born: %d · %s",
	msgRecordID:           "ID: %s ending %s",
	msgRecordStatus:       "Status: %s",
	msgRecordDose:         "Dose %d: %s, %s, %s",
	msgRecordReference:    "Reference ID: %s",
	msgRecordMobile:       "Registered mobile: %s",
	msgStatusNone:         "not vaccinated",
	msgStatusPartial:      "partially vaccinated",
	msgStatusFull:         "fully vaccinated",
	msgGenderM:            "Male",
	msgGenderF:            "Female",
	msgGenderO:            "Other",
	msgSlowDown:           "You're sending messages too fast. Please wait a minute; I'll ignore messages until then.",
	msgMenuLookup:         "See your vaccination record (code by SMS)",
	msgMenuLogout:         "End your session now",
	msgMenuCancel:         "Stop a lookup you started",
	msgMenuLanguage:       "Choose your language",
	msgMenuPrivacy:        "What is kept and for how long",
	msgMenuHelp:           "What this bot can do",
	msgMenuHistory:        "Who has seen your record",
	msgGroupNotEnabled:    "I'm not enabled in this group, so I'm leaving. To see your own vaccination record, message me privately.",
	msgGroupWelcome:       "Hello, helpdesk. Staff can send /lookup followed by a mobile number, 14-digit reference id or ID number. The person will get a code by SMS; only with that code can you see their record, in a private chat with me. Please never post codes, mobiles or ID numbers here.",
	msgGroupNotStaff:      "Only helpdesk staff can look records up here. To see your own record, message me privately.",
	msgGroupDeleted:       "I deleted a message with a code, mobile number or ID number. Please don't post them in this group.",
	msgNeedDeleteRight:    "I couldn't delete a message with personal data. Please make me an admin with the \"Delete messages\" right.",
	msgStaffUsage:         "Send /lookup followed by the person's mobile number, 14-digit reference id or ID number.",
	msgStaffBadIdentifier: "That isn't a mobile number, 14-digit reference id or ID number. Please try again.",
	msgStaffCodeSent:      "If a record matches, a code has been sent by SMS to the mobile number registered on it. Ask the person for the code, then tap the button below and enter it in our private chat within %d minutes. The button works only for you, once.",
	msgStaffButton:        "Enter the code privately",
	msgLinkInvalid:        "This link has expired, was already used, or is not yours. Start a new /lookup in your helpdesk group.",
	msgStaffEnterCode:     "Enter the %d-digit code the person read out to you.",
	msgHistoryNeedsCode:   "To see who has looked at your record, first verify with /lookup and the code we send you.",
	msgHistoryEmpty:       "Nobody has seen your record yet.",
	msgHistoryTitle:       "Who has seen the records on this number (latest first, India time):",
	msgHistoryLine:        "• %s — %s — %s",
	msgHistoryYou:         "you",
	msgHistoryAgent:       "helpdesk agent #%s",
	msgHistoryOther:       "another chat user with the code",
	msgHistoryRecord:      "a record",
	msgHistoryNames:       "the list of names",

	msgCodeSentTagged:      "If this number is registered, a %d-digit code has been sent to it by SMS. The SMS mentions request %s, so you can tell it is the answer to this request. Reply with the code within %d minutes.\n\nDidn't get it? Wait a minute, then send /lookup again.",
	msgStaffCodeSentTagged: "If a record matches, a code has been sent by SMS to the mobile number registered on it; the SMS mentions request %s. Ask the person for the code, then tap the button below and enter it in our private chat within %d minutes. The button works only for you, once, for this lookup.",
}

// idTypeNames are shown for the ID line.
var idTypeNames = map[string]map[string]string{
	"en": {"aadhaar": "Aadhaar", "pan": "PAN", "passport": "Passport", "driving_licence": "Driving licence",
		"voter_id": "Voter ID", "ration_card": "Ration card", "other": "ID"},
	"hi": {"aadhaar": "आधार", "pan": "पैन", "passport": "पासपोर्ट", "driving_licence": "ड्राइविंग लाइसेंस",
		"voter_id": "मतदाता पहचान पत्र", "ration_card": "राशन कार्ड", "other": "पहचान पत्र"},
}

// text returns the catalogue entry for lang (English when unknown), with
// args substituted.
func text(lang string, m msg, args ...any) string {
	c, ok := catalogue[lang]
	if !ok {
		c = catalogue["en"]
	}
	s := c[m]
	if s == "" {
		s = english[m]
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// renderView formats a released record. Only View fields are available
// here: the store decided what may leave.
func renderView(lang string, v store.View, deleteAfterMin int) string {
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	line(text(lang, msgRecordName, v.Name))
	line(text(lang, msgRecordBorn, v.BirthYear, genderName(lang, v.Gender)))
	if v.IDLast4 != "" {
		name := idTypeNames[lang][v.IDType]
		if name == "" {
			name = idTypeNames["en"][v.IDType]
		}
		if name == "" {
			name = v.IDType
		}
		line(text(lang, msgRecordID, name, v.IDLast4))
	}
	line(text(lang, msgRecordStatus, statusName(lang, v.Status)))
	for _, d := range v.Doses {
		line(text(lang, msgRecordDose, d.Number, d.Vaccine, d.Date, d.Center))
	}
	line(text(lang, msgRecordReference, v.Reference))
	line(text(lang, msgRecordMobile, v.Mobile))
	if deleteAfterMin > 0 {
		b.WriteByte('\n')
		b.WriteString(text(lang, msgDeletedAfter, deleteAfterMin))
	}
	return b.String()
}

func statusName(lang string, s store.Status) string {
	switch s {
	case store.StatusFull:
		return text(lang, msgStatusFull)
	case store.StatusPartial:
		return text(lang, msgStatusPartial)
	}
	return text(lang, msgStatusNone)
}

func genderName(lang, g string) string {
	switch g {
	case "M":
		return text(lang, msgGenderM)
	case "F":
		return text(lang, msgGenderF)
	}
	return text(lang, msgGenderO)
}
