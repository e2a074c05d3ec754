"""Words customers and FAQs use for the same thing, for the offline responder's word matching.

A general lexicon of customer-support vocabulary (shops, deliveries, payments, accounts, phone lines
and home internet), in English and in Arabic as Egyptians write it beside Modern Standard. It was
written for the domain, not for any one agent's FAQs: an agent whose FAQs say "recharge" is found by
a customer who writes "top up". Each group is one concept; a word or phrase may belong to several.

A concept is kept apart per script: "cancel" and "الغاء" are different concepts, so that an Arabic
question never matches an English FAQ (and its Arabic twin) through a translation, which would make
the two equally good and the question ambiguous.

Entries are written as a customer would type them; `cortex.llm.lexical` normalises them (case, Arabic
letter forms) and matches a single word through any of its light stems, a phrase word by word.
"""

from __future__ import annotations

CONCEPTS: dict[str, tuple[str, ...]] = {
    # Accounts and access
    "password": ("password", "passcode", "passwd", "pin", "pincode", "pin code", "secret code",
                 "باسورد", "باسوورد", "الباسورد", "كلمة السر", "كلمة المرور", "الرقم السري", "رقم سري", "بن كود"),
    "forgot": ("forgot", "forget", "forgotten", "can't remember", "cannot remember", "don't remember",
               "نسيت", "ناسي", "مش فاكر"),
    "register": ("register", "registration", "sign up", "signup", "enrol", "enroll", "create account",
                 "سجل", "تسجيل", "اسجل"),
    "subscribe": ("subscribe", "subscription", "join", "opt in", "اشتراك", "اشترك", "مشترك"),
    "cancel": ("cancel", "cancellation", "terminate", "termination", "deactivate", "discontinue",
               "unsubscribe", "opt out", "stop", "end", "close", "quit",
               "الغاء", "الغي", "يلغي", "اقفل", "قفل", "اوقف", "ايقاف", "وقف", "فصل", "افصل"),
    "activate": ("activate", "activation", "enable", "turn on", "switch on",
                 "تفعيل", "فعل", "افعل", "يتفعل", "شغل", "تشغيل"),
    "change": ("change", "modify", "update", "switch", "upgrade", "downgrade", "replace",
               "تغيير", "غير", "اغير", "تعديل", "عدل", "بدل", "تبديل"),
    "identity": ("id", "identity", "national id", "id card", "passport",
                 "بطاقة", "البطاقة الشخصية", "رقم قومي", "الرقم القومي", "بطاقه الرقم القومي", "باسبور"),
    # Money
    "balance": ("balance", "credit", "airtime", "رصيد", "الرصيد", "رصيدي"),
    "recharge": ("recharge", "top up", "topup", "top-up", "refill", "reload", "charge my line",
                 "شحن", "اشحن", "اشتحن", "كارت شحن"),
    "price": ("price", "cost", "costs", "fee", "fees", "charge", "charges", "rate", "rates", "how much",
              "سعر", "اسعار", "تكلفة", "تكلف", "رسوم", "بكام", "بكم", "كام سعر", "تمن"),
    "pay": ("pay", "payment", "paying", "paid", "settle", "دفع", "ادفع", "الدفع", "سداد", "اسدد", "تسديد"),
    "card": ("card", "visa", "mastercard", "credit card", "debit card", "bank card",
             "فيزا", "ماستركارد", "بطاقة بنكية", "بطاقة ائتمان", "كريدت كارد"),
    "accept": ("accept", "accepted", "قبل", "تقبل", "بتقبلوا", "تقبلوا", "متاح"),
    "refund": ("refund", "reimburse", "reimbursement", "money back", "get my money", "repay",
               "استرداد", "استرد", "استرجاع", "استرجع", "فلوسي", "ترجيع الفلوس"),
    "money": ("money", "amount", "funds", "فلوس", "مبلغ", "نقود", "مال"),
    "wallet": ("wallet", "e-wallet", "ewallet", "محفظة", "المحفظة", "محفظه"),
    "send": ("send", "transfer", "give", "forward", "ابعت", "بعت", "ارسال", "ارسل", "حول", "تحويل"),
    "loan": ("loan", "borrow", "advance", "lend", "سلفة", "سلف", "اتسلف", "قرض"),
    "installment": ("installment", "installments", "instalment", "instalments", "monthly payments",
                    "تقسيط", "قسط", "اقساط", "بالتقسيط"),
    "bill": ("bill", "invoice", "statement", "فاتورة", "الفاتورة", "فواتير"),
    "discount": ("discount", "offer", "promo code", "coupon", "sale", "خصم", "تخفيض", "كوبون", "عرض"),
    # Orders and deliveries
    "return": ("return", "send back", "give back", "exchange", "ارجاع", "ارجع", "رجع", "ترجيع", "استبدال"),
    "delivery": ("delivery", "deliver", "shipping", "ship", "shipment", "courier", "arrive", "arrival",
                 "توصيل", "يوصل", "وصول", "يوصلني", "شحنة", "الشحنة"),
    "track": ("track", "tracking", "trace", "status", "where is my order", "تتبع", "اتابع", "متابعة",
              "تتبع الشحنة", "حالة الطلب"),
    "order": ("order", "purchase", "package", "parcel", "طلب", "طلبي", "اوردر", "الاوردر"),
    "buy": ("buy", "purchase", "get a new", "اشتري", "شراء", "اشتريت"),
    "item": ("item", "product", "goods", "منتج", "المنتج", "حاجة", "سلعة"),
    "fast": ("fast", "express", "quick", "urgent", "same day", "next day", "سريع", "مستعجل", "بسرعة"),
    # Opening hours and places
    "hours": ("hours", "opening hours", "working hours", "business hours", "open", "opening", "opens",
              "closing", "closes", "closing time", "what time", "timings", "schedule",
              "مواعيد", "ميعاد", "ساعات العمل", "مواعيد العمل", "بتفتح", "تفتحوا", "بتفتحوا", "مفتوح", "مفتوحة",
              "تفتح", "فاتحين", "فاتح", "بتقفل", "بتقفلوا", "تقفلوا", "قافلين", "الساعة كام", "الساعه كام"),
    "store": ("store", "shop", "branch", "outlet", "showroom", "office", "فرع", "الفرع", "فروع", "محل",
              "معرض", "مكتب"),
    "support": ("customer service", "customer care", "support", "helpdesk", "help desk", "hotline",
                "call centre", "call center", "agent", "representative", "human",
                "خدمة العملاء", "الدعم", "الدعم الفني", "خط الدعم", "موظف", "كول سنتر"),
    "contact": ("contact", "reach", "call", "speak", "talk", "اتصل", "اكلم", "كلم", "تواصل", "اتواصل"),
    "night": ("night", "late", "midnight", "24/7", "around the clock", "24 hours", "بالليل", "الليل",
              "على مدار الساعة", "24 ساعة"),
    # Phones, lines and internet
    "phone": ("phone", "mobile", "handset", "device", "cellphone", "smartphone",
              "موبايل", "الموبايل", "تليفون", "التليفون", "هاتف", "جهاز", "فون"),
    "line": ("line", "number", "sim", "sim card", "خط", "الخط", "خطي", "رقم", "شريحة", "الشريحة", "شريحه"),
    "lost": ("lost", "lose", "missing", "ضاع", "ضاعت", "ضايع", "فقدت", "فاقد", "بدل فاقد"),
    "stolen": ("stolen", "steal", "stole", "theft", "robbed", "اتسرق", "اتسرقت", "سرقة", "مسروق", "سرق"),
    "block": ("block", "suspend", "freeze", "lock", "stop my line", "وقف الخط", "ايقاف الخط", "اوقف الخط",
              "ايقاف", "تجميد"),
    "travel": ("travel", "travelling", "traveling", "abroad", "trip", "overseas", "outside the country",
               "سفر", "مسافر", "اسافر", "برا", "بره", "الخارج", "خارج مصر"),
    "roaming": ("roaming", "international roaming", "تجوال", "التجوال", "رومينج"),
    "network": ("network", "operator", "carrier", "provider", "شبكة", "الشبكة", "مشغل"),
    "move": ("move", "switch", "port", "porting", "portability", "migrate", "carry over", "keep my number",
             "انقل", "نقل", "احول خطي"),
    "internet": ("internet", "data", "mobile data", "net", "connection", "انترنت", "الانترنت", "نت",
                 "النت", "داتا", "الداتا"),
    "megabytes": ("megabytes", "megabyte", "mb", "gigabytes", "gigabyte", "gb", "mega", "giga",
                  "ميجا", "ميجابايت", "الميجابايتس", "جيجا", "جيجابايت"),
    "bundle": ("bundle", "package", "pack", "add-on", "باقة", "الباقة", "باقه", "باقات"),
    "plan": ("plan", "tariff", "rate plan", "نظام", "خطة", "تعريفة"),
    "remaining": ("left", "remaining", "rest", "remain", "باقي", "الباقي", "فاضل", "متبقي", "الباقية"),
    "slow": ("slow", "weak", "poor", "sluggish", "laggy", "lagging", "bad connection", "بطيء", "بطئ", "ضعيف",
             "ضعيفة", "وحش", "تقيل", "بيقطع"),
    "speed": ("speed", "fast", "سرعة", "السرعة"),
    "home": ("home", "house", "landline", "fixed line", "adsl", "منزل", "منزلي", "المنزلي", "بيت", "البيت",
             "ارضي", "الارضي"),
    "router": ("router", "modem", "راوتر", "الراوتر", "مودم"),
    "wifi": ("wifi", "wi fi", "wi-fi", "wireless", "wlan", "واي فاي", "الواي فاي", "وايفاي"),
    "install": ("install", "installation", "set up", "setup", "configure", "configuration", "connect",
                "تركيب", "تركب", "اركب", "اعداد", "ضبط"),
    "technician": ("technician", "engineer", "installer", "فني", "مهندس", "الفني"),
    "message": ("message", "messages", "sms", "text", "texts", "رسالة", "رسايل", "رسائل", "مسج"),
    "promotion": ("promotional", "promotion", "promotions", "advert", "adverts", "advertising", "ads", "spam",
                  "marketing", "اعلان", "اعلانات", "اعلانية", "ترويجية", "سبام"),
    "call": ("call", "calls", "calling", "minutes", "مكالمة", "مكالمات", "دقايق", "دقائق"),
    "international": ("international", "abroad", "overseas", "foreign", "دولي", "دولية", "الدولي"),
    "coverage": ("coverage", "signal", "reception", "تغطية", "شبكة", "ارسال"),
    "locked": ("locked", "blocked", "puk", "مقفول", "مقفولة", "اتقفل", "اتقفلت"),
    "settings": ("settings", "configuration", "apn", "اعدادات", "الاعدادات"),
    "family": ("family", "relatives", "kids", "children", "عيلة", "العيلة", "عائلة", "اسرة"),
}
