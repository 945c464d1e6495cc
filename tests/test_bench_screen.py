"The recipe screen's split and argument parsing (the screen itself trains for minutes: bench/, not a test)."
import pytest

@pytest.fixture(scope='module')
def screen(bench_module): return bench_module('screen_recipe')

def test_holdout_split_is_fixed_and_disjoint(screen):
    names = [f'im{i}' for i in range(60)]
    tr, hold = screen.holdout_split(names)
    assert (len(tr), len(hold)) == (45, 15) and set(tr).isdisjoint(hold) and sorted(tr + hold) == sorted(names)
    assert screen.holdout_split(names) == (tr, hold)                      # same split every run
    assert screen.holdout_split(names, seed=1)[1] != hold

def test_parse_types_values_like_the_settings(screen):
    assert screen.parse(['ema=0', 'size=160', 'pretrained=False', 'min_label_score=0.3', 'arch=unet-resnet34']) == \
        dict(ema=0.0, size=160, pretrained=False, min_label_score=0.3, arch='unet-resnet34')
    with pytest.raises(SystemExit, match='not a TrainSettings field'): screen.parse(['nope=1'])
