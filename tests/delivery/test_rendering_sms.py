"""SMS encoding and segments, checked against figures counted by hand."""
import pytest

from delivery.rendering import sms_info


@pytest.mark.parametrize("text, characters, segments", [
    ("", 0, 0),
    ("Hello", 5, 1),
    ("a" * 160, 160, 1),
    ("a" * 161, 161, 2),                    # 153 + 8
    ("a" * 306, 306, 2),                    # 153 + 153
    ("a" * 307, 307, 3),                    # 153 + 153 + 1
    ("Prix: 10€", 10, 1),                   # € is in the extension table: 2 septets
    ("{" * 80, 160, 1),                     # 80 extension characters fill one message exactly
    ("{" * 81, 162, 2),
    # 306 septets would be two parts, but the escape pair cannot be cut:
    # part 1 holds 152 "a", part 2 holds "{" (2) + 151 "a", part 3 the last "a".
    ("a" * 152 + "{" + "a" * 152, 306, 3),
    ("Ça va? @home_£5", 15, 1),             # Ç, @, _ and £ are all in the basic table
])
def test_gsm7_lengths(text, characters, segments):
    info = sms_info(text)

    assert (info.encoding, info.characters, info.segments) == ("GSM-7", characters, segments)


@pytest.mark.parametrize("text, characters, segments", [
    ("مرحبا نورة", 10, 1),
    ("ا" * 70, 70, 1),
    ("ا" * 71, 71, 2),                      # 67 + 4
    ("ا" * 134, 134, 2),                    # 67 + 67
    ("ا" * 135, 135, 3),                    # 67 + 67 + 1
    ("Ça coûte 5€", 11, 1),                 # û is in neither GSM table
    ("Hello 😀", 8, 1),                      # one emoji makes it UCS-2; it is a surrogate pair: 2 units
    ("a" * 68 + "😀", 70, 1),
    # 134 units would be two parts, but the surrogate pair cannot be cut:
    # part 1 holds 66 "a", part 2 the emoji (2) + 65 "a", part 3 the last "a".
    ("a" * 66 + "😀" + "a" * 66, 134, 3),
])
def test_ucs2_lengths(text, characters, segments):
    info = sms_info(text)

    assert (info.encoding, info.characters, info.segments) == ("UCS-2", characters, segments)


def test_an_arabic_message_of_one_segment_holds_seventy_characters():
    assert sms_info("ع" * 70).segments == 1
    assert sms_info("ع" * 70 + "!").segments == 2


def test_an_english_message_with_one_arabic_letter_becomes_ucs2():
    info = sms_info("Your cart is waiting " + "a" * 60 + " ش")

    assert info.encoding == "UCS-2"
    assert info.characters == 83  # 21 + 60 + 2
    assert info.segments == 2
