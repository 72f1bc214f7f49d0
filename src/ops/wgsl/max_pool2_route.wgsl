// max_pool2_route — where a 2x2 window's gradient goes (max_pool2_grad.wgsl,
// max_pool2_relu_bias_grad.wgsl): all of g to the window's first maximum in row-major order
// (top-left a, top-right b, bottom-left d, bottom-right e; strict `>`), as tfjs-backend-cpu's
// maxPoolGrad routes ties; 0 to the other three. Returns the four elements in that order.

fn routeToWinner(a : VT, b : VT, d : VT, e : VT, g : VT) -> array<VT, 4> {
  // Running maximum in scan order; tN: element N beats every element before it.
  let t1 = b > a;
  let m1 = select(a, b, t1);
  let t2 = d > m1;
  let m2 = select(m1, d, t2);
  let t3 = e > m2;
  let zero = VT(0.0);
  // The winner is the last element that beat its predecessors.
  return array<VT, 4>(
    select(g, zero, t1 | t2 | t3),
    select(zero, g, t1 & !(t2 | t3)),
    select(zero, g, t2 & !t3),
    select(zero, g, t3),
  );
}
