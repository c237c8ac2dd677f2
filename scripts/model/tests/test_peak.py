from midline_model import peak


def test_conv_model_macs_are_counted_by_hand(tmp_path):
    # Two 3x3 convolutions of 4 channels on 8x8, 'same' padding: 2 x 8*8*4 outputs x 3*3*4.
    assert peak.conv_model(tmp_path / "c.tflite", size=8, channels=4, layers=2) == 2 * 8 * 8 * 4 * 9 * 4
