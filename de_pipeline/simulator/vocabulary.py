"""The words of the synthetic contact centre: intents, phrases, channels, people.

Tokens such as `%DATE%` mark redacted entities; the generator wraps each one in one of the
placeholder styles of docs/api.md.
"""

from __future__ import annotations

ENTITY_LABELS = ("GPE", "DATE", "TIME", "ORG", "PERSON", "MONEY", "EMAIL", "NUMERIC", "ID")
PLACEHOLDER_STYLES = ("[{}]", "<{}>", "{{{}}}", "#{}#", "**{}**", "****{}****")

# intent -> (training phrases shown in topmatches, customer templates, sentiment bias, mean score)
INTENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], float, float]] = {
    "order_status": (
        ("where is my order", "track my package", "order status"),
        (
            "Hi, where is my order %ID%? It was supposed to arrive on %DATE%.",
            "I ordered from %ORG% on %DATE% and still nothing",
            "Tracking number %NUMERIC% shows no update since %TIME%",
        ),
        -0.05,
        0.86,
    ),
    "refund_request": (
        ("i want a refund", "money back", "refund my order"),
        (
            "I want a refund of %MONEY% for order %ID%",
            "Please refund the %MONEY% you charged on %DATE%",
            "Can I get my money back? Order %ID%",
        ),
        -0.15,
        0.82,
    ),
    "billing_question": (
        ("question about my bill", "why was i charged", "explain this charge"),
        (
            "Why was I charged %MONEY% on %DATE%?",
            "My bill shows %MONEY% twice",
            "Can you explain the charge from %ORG%?",
        ),
        -0.1,
        0.74,
    ),
    "cancel_subscription": (
        ("cancel my subscription", "close my account", "stop my plan"),
        (
            "I'd like to cancel my subscription, account %ID%",
            "Please close my account, my email is %EMAIL%",
            "Cancel everything effective %DATE%",
        ),
        -0.2,
        0.88,
    ),
    "update_address": (
        ("change my address", "update delivery address", "i moved"),
        (
            "I moved to %GPE%, please update my address",
            "New address is in %GPE%, zip %NUMERIC%",
            "Change delivery address for order %ID%",
        ),
        0.05,
        0.84,
    ),
    "technical_support": (
        ("app not working", "error message", "cannot connect"),
        (
            "The app crashes every time at %TIME%",
            "I can't connect, error %NUMERIC%",
            "Website not loading since %DATE%",
        ),
        -0.1,
        0.7,
    ),
    "account_access": (
        ("cannot log in", "reset my password", "locked out"),
        (
            "I can't log in, my email is %EMAIL%",
            "Locked out of account %ID%",
            "Password reset email never arrived at %EMAIL%",
        ),
        -0.15,
        0.83,
    ),
    "delivery_delay": (
        ("my delivery is late", "package delayed", "courier did not come"),
        (
            "My package is late, it's been stuck in %GPE% since %DATE%",
            "Courier said %TIME% but nobody came",
            "Why is delivery delayed to %DATE%?",
        ),
        -0.3,
        0.78,
    ),
    "product_question": (
        ("product information", "is this compatible", "how much does it cost"),
        (
            "Does the %ORG% charger work with this model?",
            "Is this available in %GPE%?",
            "How much is the premium plan, %MONEY%?",
        ),
        0.15,
        0.62,
    ),
    "complaint": (
        ("i want to complain", "bad service", "speak to a manager"),
        (
            "This is the third time I'm contacting you, %PERSON% promised a call back",
            "Terrible service at your %GPE% store",
            "I'm very unhappy, nobody answered on %DATE%",
        ),
        -0.45,
        0.57,
    ),
    "payment_failed": (
        ("payment failed", "card declined", "cannot pay"),
        (
            "My card payment of %MONEY% failed",
            "Payment declined for order %ID% at %TIME%",
            "Tried to pay %MONEY% twice and it failed",
        ),
        -0.2,
        0.8,
    ),
    "store_hours": (
        ("opening hours", "when are you open", "store times"),
        (
            "What time does the %GPE% store open?",
            "Are you open on %DATE%?",
            "Is the store near %GPE% open after %TIME%?",
        ),
        0.1,
        0.9,
    ),
}
# The confidence of this intent drifts down over time, so trend queries have something to find.
DRIFTING_INTENT = "technical_support"

CUSTOMER_FOLLOW_UPS = (
    "yes",
    "ok thanks",
    "that's right",
    "my name is %PERSON%",
    "my number is %NUMERIC%",
    "it was on %DATE% around %TIME%",
    "you can reach me at %EMAIL%",
    "still waiting...",
    "Thank you!",
)
BOT_LINES = (
    "Hi! I'm the %ORG% virtual assistant. How can I help?",
    "I can help with that. Can you confirm your order number?",
    "Thanks %PERSON%, one moment please.",
    "I found an order placed on %DATE%. Is that the one?",
)
BOT_HANDOFF = "Let me connect you to an agent."
AGENT_LINES = (
    "Hi %PERSON%, this is {agent} from %ORG%. I'm looking into it.",
    "I see order %ID% was shipped on %DATE%.",
    "I've issued a refund of %MONEY% to your card.",
    "I'll send the confirmation to %EMAIL%.",
    "Our %GPE% team will call you at %TIME% tomorrow.",
    "Is there anything else I can help with?",
)
AGENT_TRANSFER = "I'm transferring you to a colleague who can help with this."
SURVEY_LINES = ("Please rate your experience from 1 to 5.", "Thanks for your feedback!")
SURVEY_ANSWERS = ("5", "4", "3", "2 - not great", "1 - terrible")

# channel -> (share of journeys, sentiment bias, sessionchannelinfo)
CHANNELS: dict[str, tuple[float, float, dict[str, str]]] = {
    "webchat": (0.35, 0.15, {"widget_id": "acme-web-01", "page": "https://acme.example/help"}),
    "whatsapp": (0.25, 0.1, {"whatsapp_number": "+15550100200", "business": "Acme Support"}),
    "sms": (0.15, 0.0, {"sms_number": "+15550100300"}),
    "facebook": (0.15, -0.05, {"page_id": "1029384756", "page_name": "Acme"}),
    "twitter": (0.10, -0.25, {"twitter_handle": "@AcmeHelp"}),
}
LANGUAGES = (("en", 0.85), ("es", 0.10), ("fr", 0.05))
AGENTS = (
    "Alice Moreno",
    "Bilal Haddad",
    "Chen Wei",
    "Dana Kowalski",
    "Emeka Obi",
    "Farah Siddiqui",
    "Gustavo Lima",
    "Hanna Berg",
)
CUSTOMER_NAMES = ("Sam Taylor", "Priya Nair", "Luis Ortega", "Mia Schulz", "Tom Reed", "[PERSON]")
BOT_NAME = "Acme Assistant"
WORKFLOWS = ("Support Triage", "Orders Bot", "Billing Bot")
SURVEY_WORKFLOW = "CSAT Survey"

# Long-texts mode (SimulatorConfig.long_texts): sentences appended to customer and agent
# messages, so that texts run from a few words to a few hundred characters.
LONG_TEXT_DETAILS: dict[str, tuple[str, ...]] = {
    "customer": (
        "I already tried restarting the app and logging out and back in, but nothing changed.",
        "This is really frustrating because I need it sorted before the weekend, I'm travelling to %GPE%.",
        "Your colleague %PERSON% told me on %DATE% that someone would get back to me within 48 hours.",
        "I have been a customer for years and have never had a problem like this before.",
        "The confirmation email I got at %EMAIL% says something completely different from your website.",
        "Could you please check the notes on my account, reference %ID%, before asking me again?",
        "I paid %MONEY% with my card ending %NUMERIC% and the money has already left my account.",
        "Honestly I just want to know what is happening and when, a clear answer would be enough.",
    ),
    "agent": (
        "I completely understand how frustrating this must be, and I'm sorry for the trouble.",
        "I've added a note to your account so that anyone you speak to next can see the whole history.",
        "You should receive a confirmation at %EMAIL% within the next few minutes; please check spam too.",
        "Refunds usually take three to five working days to appear, depending on your bank.",
        "Our records show the last update from the courier in %GPE% at %TIME% on %DATE%.",
        "If anything else comes up, just reply to this conversation and we'll pick it up from here.",
        "I've escalated this to our %ORG% team with priority, reference %ID%.",
    ),
}

# Hostile mode: values that a real export may carry.
MALFORMED_SESSIONIDS = ("abc", "12", "12.x", "", "1.2.3", "-3.4", " 7.1")
ODD_TEXTS = (
    "Great 🙂👍🏽 thanks!! 🚀",
    "He said \"it's broken\" — really 'broken'",
    "'); DROP TABLE messages; --",
    "line one\nline two\r\n\tindented \\ backslash",
    "NULL",
    "",
)
HUGE_TEXT_BYTES = 100_000
