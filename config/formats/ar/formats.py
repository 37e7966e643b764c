"""What Django's own Arabic formats leave out, so the marketer UI reads naturally in Arabic.

Django's `ar` formats name the separators (a comma for decimals, a dot for thousands) but
no grouping and no short date-and-time format, so amounts came out ungrouped ("1234,50")
and short dates in the American month/day order. Every other format falls back to Django's.
Digits stay Western (0-9), as Saudi and Gulf shop back-offices write them.
"""
NUMBER_GROUPING = 3
SHORT_DATETIME_FORMAT = "d\u200f/m\u200f/Y g:i A"
