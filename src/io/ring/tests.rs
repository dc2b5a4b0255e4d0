//! The ring's operations over a socket pair, on a glommio executor with
//! the ring's driver running: buffers come back with their results, a
//! parked receive reaches the ring's `Unpark`, a dropped operation is
//! cancelled and its slot reused.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use super::{start, OpBuf, Ring, Unpark};
use crate::config::RingSetup;

/// Runs `test` on a new executor with a started ring.
fn on_ring<F, Fut>(test: F)
where
    F: FnOnce(Rc<Ring>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let (ring, driver) = start(RingSetup::Auto).await.expect("a ring on this kernel");
            driver.detach();
            test(ring).await;
        })
        .expect("an executor")
        .join()
        .expect("the test ends");
}

#[test]
fn a_send_and_a_receive_complete_with_their_buffers() {
    on_ring(|ring| async move {
        let (a, b) = UnixStream::pair().expect("a socket pair");
        let (sent, back) = ring.send(a.as_raw_fd(), OpBuf::Bytes(Cow::Borrowed(b"ring")), 0).await;
        assert_eq!(sent.expect("sent"), 4);
        assert!(matches!(back, OpBuf::Bytes(_)), "the buffer comes back");
        let (got, back) = ring.recv(b.as_raw_fd(), vec![0; 16], 0).await;
        let OpBuf::Vec(buf) = back else { panic!("the receive buffer comes back") };
        assert_eq!(&buf[..got.expect("received")], b"ring");
    });
}

#[test]
fn a_parked_receive_reaches_unpark_when_data_arrives() {
    struct Keys(RefCell<Vec<u32>>);
    impl Unpark for Keys {
        fn unpark(&self, key: u32) {
            self.0.borrow_mut().push(key);
        }
    }
    on_ring(|ring| async move {
        let keys = Rc::new(Keys(RefCell::new(Vec::new())));
        ring.set_unpark(keys.clone());
        let (mut a, b) = UnixStream::pair().expect("a socket pair");
        let read = ring.recv(b.as_raw_fd(), vec![0; 16], 0).detach();
        ring.park(&read, 7);
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert!(keys.0.borrow().is_empty(), "nothing arrived yet");
        a.write_all(b"x").expect("write");
        for _ in 0..100 {
            if !keys.0.borrow().is_empty() {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*keys.0.borrow(), [7]);
        let (got, _) = ring.resume(read).await;
        assert_eq!(got.expect("received"), 1);
    });
}

#[test]
fn a_dropped_receive_is_cancelled_and_its_slot_reused() {
    on_ring(|ring| async move {
        let (mut a, b) = UnixStream::pair().expect("a socket pair");
        let slots = |ring: &Ring| {
            let inner = ring.inner.borrow();
            (inner.slots.len(), inner.free.len())
        };
        for round in 0..2 {
            for _ in 0..100 {
                drop(ring.recv(b.as_raw_fd(), vec![0; 16], 0));
            }
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let (all, free) = slots(&ring);
            assert_eq!(all, free, "round {round}: every cancelled receive gave its slot back");
            assert!(all <= 100 + 4, "round {round}: slots are reused, {all} made");
        }
        a.write_all(b"after").expect("write");
        let (got, back) = ring.recv(b.as_raw_fd(), vec![0; 16], 0).await;
        let OpBuf::Vec(buf) = back else { panic!("the receive buffer comes back") };
        assert_eq!(&buf[..got.expect("received")], b"after", "no cancelled read took the bytes");
        let mut rest = [0u8; 1];
        b.set_nonblocking(true).expect("non-blocking");
        assert!((&b).read(&mut rest).is_err(), "nothing else arrived");
    });
}
