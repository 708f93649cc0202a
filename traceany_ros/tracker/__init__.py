"""The classical tracker behind the ``flow`` and ``flow-rigid`` backends;
the method: ``docs/method.md``, section 6.

    flow.py            optical flow chained over a window, lifted to 3D with depth, fitted with the B-spline;
                       the named tracker presets (``TRACKERS``: one per use)
    rigid.py           rigid parts: a lost point moves with the fitted motion of its part
    icp.py             point-to-plane ICP of rigid depth segments onto the next frame
    matcher.py         the learned two-frame coarse matcher that starts DIS on large motions
    train_matcher.py   the matcher's training on simulated ground-truth matches

A leaf of the package: it imports only the geometry, the B-spline (``field``), the episode contract and, for
training the matcher, the simulator's ground truth; never the network, the backends or ``train/``
(``tests/unit/test_layout.py`` checks it).
"""
