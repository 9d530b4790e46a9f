"""GS1 check digits and SSCC-18 carton labels, checked against examples worked by hand."""

from __future__ import annotations

import pytest

from gp_pipelines.automation.trading import TradingError, gs1_check_digit, sscc18, valid_sscc18
from gp_pipelines.sandbox.partner import check_digit_ok


def test_gs1_check_digit_of_a_upc():
    # UPC-A 0 36000 29145 ?: from the right, weights 3,1,3,...:
    # 5*3 + 4*1 + 1*3 + 9*1 + 2*3 + 0*1 + 0*3 + 0*1 + 6*3 + 3*1 + 0*3 = 15+4+3+9+6+0+0+0+18+3+0 = 58 -> 10-8 = 2
    assert gs1_check_digit("03600029145") == "2"


def test_sscc18_of_the_gs1_example():
    # Extension 1, company prefix 0614141, serial 123456789: body 1 0614141 123456789 (17 digits).
    # From the right: 9*3 + 8 + 7*3 + 6 + 5*3 + 4 + 3*3 + 2 + 1*3 + 1 + 4*3 + 1 + 4*3 + 1 + 6*3 + 0 + 1*3
    # = 27+8+21+6+15+4+9+2+3+1+12+1+12+1+18+0+3 = 143 -> 10-3 = 7
    assert sscc18(1, "0614141", 123456789) == "106141411234567897"
    assert valid_sscc18("106141411234567897")


def test_sscc18_pads_the_serial_to_sixteen_digits_with_the_prefix():
    # Body 0 0614141 000000001: 1*3 + 1 + 4*3 + 1 + 4*3 + 1 + 6*3 = 3+1+12+1+12+1+18 = 48 -> 2
    assert sscc18(0, "0614141", 1) == "006141410000000012"
    # Serial 2 adds 2*3 = 6 instead of 3: 51 -> 9
    assert sscc18(0, "0614141", 2) == "006141410000000029"
    # A 10-digit prefix leaves 6 digits of serial.
    assert sscc18(3, "0614141999", 42)[:17] == "30614141999000042"


def test_invalid_codes_are_recognised():
    assert not valid_sscc18("106141411234567890")  # wrong check digit
    assert not valid_sscc18("10614141123456789")  # 17 digits
    assert not valid_sscc18("10614141123456789X")
    assert check_digit_ok("106141411234567897") and not check_digit_ok("106141411234567898")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, "0614141", 1), "extension digit"),
        ((0, "12345", 1), "company prefix"),
        ((0, "06141A1", 1), "company prefix"),
        ((0, "0614141", 10**9), "at most 9 digits"),
        ((0, "0614141", "12a"), "at most 9 digits"),
    ],
)
def test_bad_sscc_inputs_say_what_is_wrong(args, message):
    with pytest.raises(TradingError, match=message):
        sscc18(*args)
