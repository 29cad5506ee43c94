from feedback.ids import MAX_ID, parse_id


def test_parse_id_reads_only_ids_a_row_can_have():
    assert parse_id("42") == 42 and parse_id(str(MAX_ID)) == MAX_ID
    # Past bigint, zero, signs, spaces, decimals and non-ASCII digits ("²" passes isdigit but
    # int() refuses it) spell no id.
    for text in (str(MAX_ID + 1), "0", "-3", "+3", " 3", "3.0", "²", "٣", ""):
        assert parse_id(text) is None, text
